"""Generative tasks: `gan` (DCGAN), `wgan_gp`, `autoencoder` (optionally denoising) and `vae`.

They train through the same loop as every other task: several named optimizers, custom per-replica
steps that return sums over the replica's examples, and a per-epoch `log_epoch` that draws a
fixed-noise sample grid (or reconstructions next to their inputs) and returns the quality score:

    frechet_cnn_distance: the Frechet distance between generated (or reconstructed) images and real
    images of the `frechet_split`, on features of the zoo's `cnn` classifier. NOT Inception FID
    (see training/frechet.py for what it is and where the classifier comes from).

Randomness inside the steps is stateless: each draw is seeded by (task.seed, stream, optimizer
step), and a replica takes its own rows of one draw made for the whole global batch, so a run is
reproducible, resumes exactly, and gives the same updates under any number of replicas. For the
same reason the GAN tasks switch the models' BatchNormalization layers to synchronized statistics
(`task.sync_batchnorm`, on by default): the statistics of the global batch, not of each replica's
share (TensorFlow backend; the flag is saved in model.keras).

Task fields (the recipe's `task` section; every one can be changed with --set task.<field>=...):

- seed: the noise seed (training noise, the fixed sample grid, the Frechet samples).
- grid_size: number of fixed-noise samples in the TensorBoard grid.
- frechet_samples: images scored per epoch (and real images of `frechet_split` compared with);
  0 turns the score off.
- feature_classifier: a trained cnn model.keras for the score; "" trains one (see frechet.py),
  `feature_classifier_steps` Adam steps on the train split, cached under `feature_cache`
  ("" keeps it in memory only).
- gan: sync_batchnorm. wgan_gp: n_critic, gradient_penalty. vae: kl_weight.
  autoencoder: noise_std (denoising: Gaussian noise with this standard deviation, as a fraction of
  the pixel range, added to the inputs during training; the targets stay clean).
"""

import math

import keras
import numpy as np
import tensorflow as tf

from training import frechet, summaries
from training.tasks.base import Task, apply_gradients

PIXEL_SCALE = 127.5  # the critic maps pixels 0..255 to [-1, 1] by dividing by this


class _ImageGenerative(Task):
    """Shared by the four tasks: image inputs, seeded noise, the sample grid and the score."""

    image_key = "image"

    def __init__(self, config, source):
        super().__init__(config, source)
        if self.image_key not in source.features.keys():
            raise ValueError(f"task {self.name!r} needs an {self.image_key!r} feature")
        self.image_shape = tuple(source.features[self.image_key].shape)
        self.seed = int(config.get("seed", 0))
        self.grid_size = int(config.get("grid_size", 64))
        self.frechet_samples = int(config.get("frechet_samples", 1000))
        self.frechet_split = config.get("frechet_split", "test")
        self.latent_dim = None  # known once the model is built (build_optimizers)
        self._scorer = None
        self._real_logged = False

    def model_overrides(self):
        return {"input_shape": self.image_shape}

    def preprocess(self, example):
        return (tf.cast(example[self.image_key], tf.float32),)

    # -- optimizers ------------------------------------------------------------------------------
    @staticmethod
    def _optimizer(make_optimizer, variables):
        """One optimizer from the recipe's optimizer section (Adam's beta_1/beta_2 there too),
        built on `variables`."""
        optimizer = make_optimizer()
        optimizer.build(variables)
        return optimizer

    # -- seeded noise ----------------------------------------------------------------------------
    def _replica_draw(self, draw, local_n, dim, step, stream):
        """This replica's `local_n` rows of one [replicas * local_n, dim] draw seeded by
        (seed, stream, step): the same numbers in total whatever the number of replicas."""
        context = tf.distribute.get_replica_context()
        replicas, index = context.num_replicas_in_sync, context.replica_id_in_sync_group
        seed = tf.random.experimental.stateless_fold_in(
            tf.constant([self.seed, stream], tf.int64), tf.cast(step, tf.int64)
        )
        rows = draw([replicas * local_n, dim], seed=seed)
        return rows[index * local_n : (index + 1) * local_n]

    def _normal(self, local_n, dim, step, stream):
        return self._replica_draw(tf.random.stateless_normal, local_n, dim, step, stream)

    def _uniform(self, local_n, step, stream):
        return self._replica_draw(tf.random.stateless_uniform, local_n, 1, step, stream)

    def _eval_seed(self, images, stream):
        """A seed fixed by the batch's pixels: the same evaluation noise every epoch."""
        checksum = tf.reduce_sum(tf.cast(images, tf.int64))
        return tf.random.experimental.stateless_fold_in(
            tf.constant([self.seed, stream], tf.int64), checksum
        )

    def fixed_latents(self, n, stream):
        """Latent vectors N(0, I) fixed by (seed, stream): the same at every epoch."""
        rng = np.random.default_rng([self.seed, stream])
        return rng.standard_normal((n, self.latent_dim)).astype(np.float32)

    # -- the quality score ----------------------------------------------------------------------
    def scorer(self) -> frechet.CnnFrechet:
        """The Frechet-on-zoo-cnn-features scorer against `frechet_samples` real images."""
        if self._scorer is None:
            classifier = frechet.feature_classifier(
                self.source,
                path=self.config.get("feature_classifier") or "",
                cache_dir=self.config.get("feature_cache") or None,
                steps=int(self.config.get("feature_classifier_steps", 400)),
                seed=self.seed,
            )
            real = self.real_images(self.frechet_samples)
            self._scorer = frechet.CnnFrechet(classifier, real)
        return self._scorer

    def real_images(self, n) -> np.ndarray:
        """`n` images of `frechet_split`, drawn across it (image folders are sorted by label)."""
        ds = (
            self.source.load(self.frechet_split)
            .map(lambda example: example[self.image_key])
            .shuffle(10000, seed=self.seed)
            .take(n)
            .batch(500)
        )
        return np.concatenate(list(ds.as_numpy_iterator())).astype(np.float32)

    def generate(self, model, latents, batch=500) -> np.ndarray:
        """Images from latent vectors through the model's generator (decoder), inference mode."""
        return np.concatenate(
            [
                np.asarray(self._decode(model, latents[i : i + batch]))
                for i in range(0, len(latents), batch)
            ]
        )

    def frechet_score(self, model) -> float:
        """frechet_cnn_distance of `frechet_samples` generated images (fixed latents)."""
        latents = self.fixed_latents(self.frechet_samples, stream=101)
        return self.scorer().score(self.generate(model, latents))

    def _decode(self, model, latents):
        raise NotImplementedError

    def _sample_grid(self, model, step):
        images = self.generate(model, self.fixed_latents(self.grid_size, stream=100))
        columns = math.ceil(math.sqrt(self.grid_size))
        summaries.image("samples", summaries.grid(images, columns=columns), step)

    def _scores(self, model) -> dict:
        return {frechet.SCORE_NAME: self.frechet_score(model)} if self.frechet_samples else {}

    # -- export ----------------------------------------------------------------------------------
    def calibration(self, train, test):
        """Latent vectors N(0, I): the input space of the generator's / decoder's serving_default
        (representative: int8 calibration; x_test: the report's comparison with the SavedModel)."""
        return {
            "representative": self.fixed_latents(200, stream=200),
            "x_test": self.fixed_latents(200, stream=201),
        }

    def export_info(self):
        return {"latent_dim": self.latent_dim, "image_shape": list(self.image_shape)}


def _all_layers(layer):
    for sub in getattr(layer, "layers", []):
        yield sub
        yield from _all_layers(sub)


def _bce(labels_value, logits):
    """Per-example sigmoid cross-entropy of [B, 1] logits against a constant label."""
    labels = tf.fill(tf.shape(logits), labels_value)
    return tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels, logits), axis=-1)


# ---------------------------------------------------------------------------------------------
# GANs


class Gan(_ImageGenerative):
    """DCGAN (Radford et al. 2016): the non-saturating GAN losses, one discriminator update then
    one generator update per step, each with fresh noise, Adam with beta_1 = 0.5."""

    name = "gan"
    critic_name = "discriminator"

    def build_optimizers(self, model, make_optimizer):
        generator, critic = model.get_layer("generator"), model.get_layer(self.critic_name)
        self.latent_dim = int(generator.input_shape[-1])
        if self.config.get("sync_batchnorm", True):
            for layer in _all_layers(model):
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.synchronized = True
        return {
            "generator": self._optimizer(make_optimizer, generator.trainable_variables),
            self.critic_name: self._optimizer(make_optimizer, critic.trainable_variables),
        }

    def _decode(self, model, latents):
        return model.get_layer("generator")(latents, training=False)

    def train_step(self, model, optimizers, batch, global_batch_size):
        (real,) = batch
        generator, critic = model.get_layer("generator"), model.get_layer(self.critic_name)
        n = tf.shape(real)[0]
        step = optimizers["generator"].iterations

        fake = generator(self._normal(n, self.latent_dim, step, stream=0), training=True)
        with tf.GradientTape() as tape:
            real_logits = critic(real, training=True)
            fake_logits = critic(fake, training=True)
            d_per_example = _bce(1.0, real_logits) + _bce(0.0, fake_logits)
            d_loss = tf.reduce_sum(d_per_example) / global_batch_size
        apply_gradients(optimizers[self.critic_name], tape, d_loss, critic.trainable_variables)

        with tf.GradientTape() as tape:
            z = self._normal(n, self.latent_dim, step, stream=1)
            g_per_example = _bce(1.0, critic(generator(z, training=True), training=True))
            g_loss = tf.reduce_sum(g_per_example) / global_batch_size
        apply_gradients(optimizers["generator"], tape, g_loss, generator.trainable_variables)
        return self._sums(d_per_example, g_per_example, real_logits, fake_logits, n)

    def eval_step(self, model, batch):
        (real,) = batch
        generator, critic = model.get_layer("generator"), model.get_layer(self.critic_name)
        n = tf.shape(real)[0]
        z = tf.random.stateless_normal([n, self.latent_dim], seed=self._eval_seed(real, 2))
        real_logits = critic(real, training=False)
        fake_logits = critic(generator(z, training=False), training=False)
        d_per_example = _bce(1.0, real_logits) + _bce(0.0, fake_logits)
        return self._sums(d_per_example, _bce(1.0, fake_logits), real_logits, fake_logits, n)

    @staticmethod
    def _sums(d_per_example, g_per_example, real_logits, fake_logits, n):
        return {
            "d_loss": tf.reduce_sum(d_per_example),
            "g_loss": tf.reduce_sum(g_per_example),
            # the discriminator's mean probability that real / generated images are real
            "d_real": tf.reduce_sum(tf.sigmoid(real_logits)),
            "d_fake": tf.reduce_sum(tf.sigmoid(fake_logits)),
            "count": tf.cast(n, tf.float32),
        }

    def log_epoch(self, model, sample, totals, step):
        self._sample_grid(model, step)
        if not self._real_logged:  # real images once, to compare the samples with
            summaries.image("real", summaries.grid(sample[0], columns=5), step)
            self._real_logged = True
        return self._scores(model)


class WganGp(Gan):
    """WGAN-GP (Gulrajani et al. 2017): n_critic critic updates per generator update, the
    Wasserstein losses, and a gradient penalty pulling the critic's gradient norm at random
    interpolates of real and generated images towards 1.

    One loop step is one generator iteration. The per-replica batch holds the n_critic critic
    minibatches: critic update j takes the examples j, j + n_critic, j + 2 n_critic, ... (a strided
    split, so the minibatches are the same whatever the number of replicas), each with fresh noise;
    the critic updates are a Python loop, unrolled in the step's graph. The generator update then
    uses one minibatch's worth of fresh noise. So with `batch_size` 320 and n_critic 5, both
    networks see minibatches of 64, as in the paper. `batch_size` should be a multiple of
    n_critic x replicas. The gradient norm is taken with respect to the critic's [-1, 1] inputs (the
    paper's image scale), i.e. the pixel-space gradient times 127.5.
    """

    name = "wgan_gp"
    critic_name = "critic"

    def __init__(self, config, source):
        super().__init__(config, source)
        self.n_critic = int(config.get("n_critic", 5))
        self.penalty_weight = float(config.get("gradient_penalty", 10.0))
        if self.n_critic < 1:
            raise ValueError(f"task.n_critic must be at least 1, got {self.n_critic}")

    def gradient_penalty(self, critic, real, fake, epsilon):
        """Per-example (||d critic / d x_hat|| - 1)^2 at x_hat = eps real + (1 - eps) fake."""
        epsilon = tf.reshape(epsilon, [-1] + [1] * (len(real.shape) - 1))
        mixed = epsilon * real + (1.0 - epsilon) * fake
        with tf.GradientTape() as tape:
            tape.watch(mixed)
            score = tf.cast(critic(mixed, training=True), tf.float32)
        grads = tape.gradient(score, mixed) * PIXEL_SCALE
        norms = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=[1, 2, 3]) + 1e-12)
        return tf.square(norms - 1.0)

    def train_step(self, model, optimizers, batch, global_batch_size):
        (real,) = batch
        generator, critic = model.get_layer("generator"), model.get_layer(self.critic_name)
        k = self.n_critic
        if real.shape[0] is not None and real.shape[0] % k:
            raise ValueError(
                f"wgan_gp: the per-replica batch {real.shape[0]} is not a multiple of "
                f"n_critic={k}; choose train.batch_size = a multiple of n_critic x replicas"
            )
        minibatch = global_batch_size // k  # one critic minibatch, over all replicas
        step = optimizers["generator"].iterations
        sums = {"critic_loss": 0.0, "wasserstein_distance": 0.0, "gradient_penalty": 0.0}
        for j in range(k):  # unrolled: n_critic critic updates in this one step
            real_j = real[j::k]
            m = tf.shape(real_j)[0]
            fake = generator(self._normal(m, self.latent_dim, step, stream=10 + j), training=True)
            epsilon = self._uniform(m, step, stream=20 + j)
            with tf.GradientTape() as tape:
                real_score = tf.cast(critic(real_j, training=True), tf.float32)[:, 0]
                fake_score = tf.cast(critic(fake, training=True), tf.float32)[:, 0]
                penalty = self.gradient_penalty(critic, real_j, fake, epsilon)
                per_example = fake_score - real_score + self.penalty_weight * penalty
                loss = tf.reduce_sum(per_example) / minibatch
            apply_gradients(optimizers[self.critic_name], tape, loss, critic.trainable_variables)
            sums["critic_loss"] += tf.reduce_sum(per_example)
            sums["wasserstein_distance"] += tf.reduce_sum(real_score - fake_score)
            sums["gradient_penalty"] += tf.reduce_sum(penalty)

        m = tf.shape(real[0::k])[0]
        with tf.GradientTape() as tape:
            z = self._normal(m, self.latent_dim, step, stream=1)
            g_per_example = -tf.cast(critic(generator(z, training=True), training=True), tf.float32)
            g_loss = tf.reduce_sum(g_per_example) / minibatch
        apply_gradients(optimizers["generator"], tape, g_loss, generator.trainable_variables)
        return {
            **sums,
            "g_loss": tf.reduce_sum(g_per_example),
            "generator_count": tf.cast(m, tf.float32),
            "count": tf.cast(tf.shape(real)[0], tf.float32),
        }

    def eval_step(self, model, batch):
        (real,) = batch
        generator, critic = model.get_layer("generator"), model.get_layer(self.critic_name)
        n = tf.shape(real)[0]
        z = tf.random.stateless_normal([n, self.latent_dim], seed=self._eval_seed(real, 2))
        epsilon = tf.random.stateless_uniform([n, 1], seed=self._eval_seed(real, 3))
        fake = generator(z, training=False)
        real_score = tf.cast(critic(real, training=False), tf.float32)[:, 0]
        fake_score = tf.cast(critic(fake, training=False), tf.float32)[:, 0]
        penalty = self.gradient_penalty(critic, real, fake, epsilon)
        return {
            "critic_loss": tf.reduce_sum(fake_score - real_score + self.penalty_weight * penalty),
            "wasserstein_distance": tf.reduce_sum(real_score - fake_score),
            "gradient_penalty": tf.reduce_sum(penalty),
            "g_loss": -tf.reduce_sum(fake_score),
            "generator_count": tf.cast(n, tf.float32),
            "count": tf.cast(n, tf.float32),
        }

    def results(self, totals):
        n = max(float(totals["count"]), 1.0)
        out = {k: float(v) / n for k, v in totals.items() if k not in ("count", "generator_count")}
        out["g_loss"] = float(totals["g_loss"]) / max(float(totals["generator_count"]), 1.0)
        return out


# ---------------------------------------------------------------------------------------------
# autoencoders


class Vae(_ImageGenerative):
    """VAE (Kingma & Welling 2014): per example, a Bernoulli reconstruction term (binary
    cross-entropy of the decoder's logits against pixels / 255, summed over pixels) plus
    kl_weight x KL(q(z|x) || N(0, I)) summed over latent dimensions; both are logged.

    The reparameterisation z = z_mean + exp(z_log_var / 2) * eps is done here with seeded
    per-replica noise (see the module docstring) rather than by the model's Sampling layer, whose
    seed-generator state would give every replica the same eps; the encoder still runs with
    training=True. Validation decodes z_mean (the model's inference path)."""

    name = "vae"

    def __init__(self, config, source):
        super().__init__(config, source)
        self.kl_weight = float(config.get("kl_weight", 1.0))

    def build_optimizers(self, model, make_optimizer):
        self.latent_dim = int(model.get_layer("decoder").input_shape[-1])
        return {"model": self._optimizer(make_optimizer, model.trainable_variables)}

    def _decode(self, model, latents):
        return model.get_layer("decoder")(latents, training=False)["reconstruction"]

    def _per_example(self, images, logits, z_mean, z_log_var):
        targets = images / 255.0
        bce = tf.nn.sigmoid_cross_entropy_with_logits(targets, tf.cast(logits, tf.float32))
        reconstruction = tf.reduce_sum(bce, axis=[1, 2, 3])
        kl = -0.5 * tf.reduce_sum(1.0 + z_log_var - tf.square(z_mean) - tf.exp(z_log_var), axis=1)
        return reconstruction, kl

    def _sums(self, reconstruction, kl, n):
        return {
            "loss": tf.reduce_sum(reconstruction + self.kl_weight * kl),
            "reconstruction_loss": tf.reduce_sum(reconstruction),
            "kl_loss": tf.reduce_sum(kl),
            "count": tf.cast(n, tf.float32),
        }

    def train_step(self, model, optimizers, batch, global_batch_size):
        (images,) = batch
        encoder, decoder = model.get_layer("encoder"), model.get_layer("decoder")
        n = tf.shape(images)[0]
        eps = self._normal(n, self.latent_dim, optimizers["model"].iterations, stream=5)
        with tf.GradientTape() as tape:
            encoded = encoder(images, training=True)
            z_mean = tf.cast(encoded["z_mean"], tf.float32)
            z_log_var = tf.cast(encoded["z_log_var"], tf.float32)
            z = z_mean + tf.exp(0.5 * z_log_var) * eps
            logits = decoder(z, training=True)["reconstruction_logits"]
            reconstruction, kl = self._per_example(images, logits, z_mean, z_log_var)
            loss = tf.reduce_sum(reconstruction + self.kl_weight * kl) / global_batch_size
        apply_gradients(optimizers["model"], tape, loss, model.trainable_variables)
        return self._sums(reconstruction, kl, n)

    def eval_step(self, model, batch):
        (images,) = batch
        out = model(images, training=False)
        reconstruction, kl = self._per_example(
            images, out["reconstruction_logits"], out["z_mean"], out["z_log_var"]
        )
        return self._sums(reconstruction, kl, tf.shape(images)[0])

    def log_epoch(self, model, sample, totals, step):
        self._sample_grid(model, step)
        images = sample[0][:10]
        reconstructed = model(images, training=False)["reconstruction"]
        _log_reconstructions([("input", images), ("output", reconstructed)], step)
        return self._scores(model)


class Autoencoder(_ImageGenerative):
    """A (denoising) autoencoder: mean squared error between the reconstruction and the clean
    image, on pixels scaled to [0, 1]; PSNR logged too. With task.noise_std > 0 the training inputs
    get Gaussian noise (clipped to the pixel range) in `augment`, and validation inputs get the same
    kind of noise, seeded by their pixels, so the validation loss measures denoising."""

    name = "autoencoder"

    def __init__(self, config, source):
        super().__init__(config, source)
        self.noise_std = float(config.get("noise_std", 0.0))
        self._frechet_inputs = None

    def preprocess(self, example):
        image = tf.cast(example[self.image_key], tf.float32)
        return image, image  # (input, target)

    def add_noise(self, images, seed):
        noise = tf.random.stateless_normal(tf.shape(images), seed=seed) * (255.0 * self.noise_std)
        return tf.clip_by_value(images + noise, 0.0, 255.0)

    @property
    def augment(self):
        if not self.noise_std:
            return None

        def augment(image, target, seed):
            return self.add_noise(image, seed), target

        return augment

    def build_optimizers(self, model, make_optimizer):
        return {"model": self._optimizer(make_optimizer, model.trainable_variables)}

    def _per_example(self, model, inputs, targets, training):
        reconstruction = tf.cast(model(inputs, training=training)["reconstruction"], tf.float32)
        mse = tf.reduce_mean(tf.square((reconstruction - targets) / 255.0), axis=[1, 2, 3])
        return mse

    def _sums(self, mse, n):
        return {
            "loss": tf.reduce_sum(mse),
            "psnr": tf.reduce_sum(10.0 * tf.math.log(1.0 / tf.maximum(mse, 1e-10)) / math.log(10)),
            "count": tf.cast(n, tf.float32),
        }

    def train_step(self, model, optimizers, batch, global_batch_size):
        inputs, targets = batch
        with tf.GradientTape() as tape:
            mse = self._per_example(model, inputs, targets, training=True)
            loss = tf.reduce_sum(mse) / global_batch_size
        apply_gradients(optimizers["model"], tape, loss, model.trainable_variables)
        return self._sums(mse, tf.shape(inputs)[0])

    def _validation_inputs(self, targets):
        return self.add_noise(targets, self._eval_seed(targets, 4)) if self.noise_std else targets

    def eval_step(self, model, batch):
        _, targets = batch
        mse = self._per_example(model, self._validation_inputs(targets), targets, training=False)
        return self._sums(mse, tf.shape(targets)[0])

    def reconstruct(self, model, images, batch=500) -> np.ndarray:
        return np.concatenate(
            [
                np.asarray(model(images[i : i + batch], training=False)["reconstruction"])
                for i in range(0, len(images), batch)
            ]
        )

    def frechet_score(self, model) -> float:
        """frechet_cnn_distance of the reconstructions of real images (noisy, when denoising)."""
        if self._frechet_inputs is None:
            clean = self.real_images(self.frechet_samples)
            self._frechet_inputs = self._validation_inputs(tf.constant(clean)).numpy()
        return self.scorer().score(self.reconstruct(model, self._frechet_inputs))

    def log_epoch(self, model, sample, totals, step):
        clean = sample[1][:10]
        inputs = self._validation_inputs(tf.constant(clean)).numpy()
        rows = [("input", inputs), ("output", self.reconstruct(model, inputs))]
        if self.noise_std:
            rows.append(("clean", clean))
        _log_reconstructions(rows, step)
        return self._scores(model)

    def calibration(self, train, test):
        """Images in the input space of `reconstruct` (noisy when denoising), drawn across the
        splits (image folders are sorted by label)."""

        def draw(ds, n):
            clean = np.stack([y for _, y in ds.shuffle(10000, seed=self.seed).take(n)])
            return self._validation_inputs(tf.constant(clean)).numpy()

        return {"representative": draw(train, 200), "x_test": draw(test, 500)}

    def export_info(self):
        return {"image_shape": list(self.image_shape), "noise_std": self.noise_std}


def _log_reconstructions(rows, step):
    """One row per (caption, images): inputs over reconstructions (over clean targets)."""
    columns = len(rows[0][1])
    images = np.concatenate([np.asarray(x) for _, x in rows])
    captions = [caption for caption, x in rows for _ in range(len(x))]
    summaries.image("reconstructions", summaries.grid(images, captions, columns=columns), step)
