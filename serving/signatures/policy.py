"""Signatures of reinforcement-learning policies (PPO, DQN, DDPG agents): observations in, the
deterministic action out, so a server or a device plays the way the agent was evaluated."""

import numpy as np
import tensorflow as tf

from serving.signatures import signature_builder


@signature_builder("policy")
def policy(archive, model, info):
    """serving_default: observation float32 [N,*obs] -> action and the network's own outputs
    (`logits` and `value` of PPO, `q_values` of DQN); what TFLite converts. act: observation ->
    action alone. A discrete action is the argmax of the logits or Q-values (int64 [N]); a
    continuous one is the actor's output, already within the action bounds (float32 [N,A])."""
    shape = list(info["observation_shape"])
    source = info["policy_output"]  # "logits", "q_values" or "action"
    discrete = info["action_space"]["type"] == "discrete"

    def outputs(observation):
        found = model(observation, training=False)
        found = {k: tf.cast(v, tf.float32) for k, v in found.items()}
        if discrete:
            action = tf.argmax(found[source], axis=-1)
        else:
            action = found[source]
        return action, found

    def serve(observation):
        action, found = outputs(observation)
        return {**{k: v for k, v in found.items() if k != "action"}, "action": action}

    def act(observation):
        return {"action": outputs(observation)[0]}

    spec = [tf.TensorSpec([None, *shape], tf.float32, name="observation")]
    archive.add_endpoint("serving_default", serve, input_signature=spec)
    archive.add_endpoint("act", act, input_signature=spec)
    return {"observation": np.zeros([1, *shape], np.float32)}
