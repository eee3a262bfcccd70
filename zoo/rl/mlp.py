"""Multilayer perceptrons for reinforcement learning on vector observations (CartPole, LunarLander,
Pendulum): the networks of CleanRL's single-file agents, layer for layer.

- `actor_critic_mlp`: PPO's actor and critic, two separate tanh MLPs on the same observation
  (logits over discrete actions; a state value), orthogonal initialization with the gains of
  "The 37 implementation details of PPO" (sqrt 2 inside, 0.01 for the logits, 1 for the value);
- `q_mlp`: DQN's Q-network, a ReLU MLP to one Q-value per discrete action;
- `deterministic_actor_mlp`: DDPG's actor, a ReLU MLP to a tanh action rescaled to the action
  bounds in the graph (so an export answers in the environment's units);
- `q_critic_mlp`: DDPG's critic Q(observation, action).

Every model returns a dict of named outputs: the exporter's `policy` signatures pick the action
from `logits`, `q_values` or `action` (serving/signatures/policy.py).
"""

import math

import keras
from keras import layers

from zoo.registry import register

PPO = "Schulman et al. 2017, Proximal Policy Optimization Algorithms, arXiv:1707.06347"
DQN = (
    "Mnih et al. 2015, Human-level control through deep reinforcement learning, Nature 518; "
    "van Hasselt et al. 2016, Deep Reinforcement Learning with Double Q-learning, AAAI"
)
DDPG = "Lillicrap et al. 2016, Continuous control with deep reinforcement learning, ICLR"


def _mlp(x, hidden, activation, prefix, gain=None):
    for i, units in enumerate(hidden):
        init = keras.initializers.Orthogonal(gain) if gain else "glorot_uniform"
        x = layers.Dense(
            units, activation=activation, kernel_initializer=init, name=f"{prefix}_dense{i + 1}"
        )(x)
    return x


def _observation(input_shape):
    x = keras.Input(shape=input_shape, name="observation")
    flat = layers.Flatten(name="flatten")(x) if len(input_shape) > 1 else x
    return x, flat


@register(
    "actor_critic_mlp",
    task="policy",
    input_shape=(4,),
    citation=PPO,
    tiny={"hidden": (8,)},
)
def actor_critic_mlp(
    input_shape=(4,), num_actions=2, hidden=(64, 64), activation="tanh", name="actor_critic_mlp"
):
    """PPO actor-critic: separate MLPs to action logits and a state value."""
    observation, x = _observation(input_shape)
    actor = _mlp(x, hidden, activation, "actor", gain=math.sqrt(2))
    logits = layers.Dense(
        num_actions, kernel_initializer=keras.initializers.Orthogonal(0.01), name="logits"
    )(actor)
    critic = _mlp(x, hidden, activation, "critic", gain=math.sqrt(2))
    value = layers.Dense(1, kernel_initializer=keras.initializers.Orthogonal(1.0), name="value")(
        critic
    )
    value = layers.Reshape((), name="value_squeeze")(value)
    return keras.Model(observation, {"logits": logits, "value": value}, name=name)


@register("q_mlp", task="policy", input_shape=(4,), citation=DQN, tiny={"hidden": (8,)})
def q_mlp(input_shape=(4,), num_actions=2, hidden=(256, 256), activation="relu", name="q_mlp"):
    """DQN Q-network: an MLP to one Q-value per action."""
    observation, x = _observation(input_shape)
    x = _mlp(x, hidden, activation, "q")
    q_values = layers.Dense(num_actions, name="q_values")(x)
    return keras.Model(observation, {"q_values": q_values}, name=name)


@register(
    "deterministic_actor_mlp",
    task="policy",
    input_shape=(3,),
    citation=DDPG,
    tiny={"hidden": (8,)},
)
def deterministic_actor_mlp(
    input_shape=(3,),
    action_dim=1,
    action_low=-1.0,
    action_high=1.0,
    hidden=(256, 256),
    activation="relu",
    name="deterministic_actor_mlp",
):
    """DDPG actor: an MLP to a tanh action scaled to [action_low, action_high]."""
    observation, x = _observation(input_shape)
    x = _mlp(x, hidden, activation, "actor")
    final = keras.initializers.RandomUniform(-3e-3, 3e-3)  # the paper's: tanh starts unsaturated
    x = layers.Dense(
        action_dim,
        activation="tanh",
        kernel_initializer=final,
        bias_initializer=final,
        name="tanh_action",
    )(x)
    scale = (float(action_high) - float(action_low)) / 2.0
    offset = (float(action_high) + float(action_low)) / 2.0
    action = layers.Rescaling(scale, offset, name="action")(x)
    return keras.Model(observation, {"action": action}, name=name)


@register(
    "q_critic_mlp",
    task="policy",
    input_shape=(3,),
    citation=DDPG,
    tiny={"hidden": (8,)},
)
def q_critic_mlp(
    input_shape=(3,), action_dim=1, hidden=(256, 256), activation="relu", name="q_critic_mlp"
):
    """DDPG critic: an MLP of (observation, action) to Q."""
    observation, x = _observation(input_shape)
    action = keras.Input(shape=(action_dim,), name="action")
    x = layers.Concatenate(name="observation_action")([x, action])
    x = _mlp(x, hidden, activation, "critic")
    q = layers.Dense(1, name="q")(x)
    q = layers.Reshape((), name="q_value")(q)
    return keras.Model({"observation": observation, "action": action}, {"q_value": q}, name=name)
