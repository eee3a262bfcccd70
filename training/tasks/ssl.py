"""Self-supervised pretraining of image encoders: SimCLR (`simclr`), SimSiam (`simsiam`) and SwAV
(`swav`).
Labels are not used to train: each image becomes two augmented views, and the encoder learns to
map them close together. The labels serve only to score the encoder each epoch.

Views (`augment`, tf.data, stateless random ops from the loop's per-example seed, so a resumed run
sees the same views): one bilinear warp that zooms (random resized crop and zoom-out), stretches,
rotates and shifts, then brightness, contrast and Gaussian noise. No flips: a mirrored digit is
not a digit.

- `simclr` (Chen et al. 2020): the NT-Xent loss with temperature on the projections of the 2N
  views of a batch; each view's positive is its sibling, its negatives every other view of the
  *global* batch. Under a tf.distribute strategy every replica gathers the other replicas'
  projections with the replica context's `all_gather` (differentiable: its gradient sends each
  replica's share back), so N replicas of B images train as one device with N*B, which is what
  makes SimCLR large-batch friendly. Scores: `loss`, `contrast_accuracy` (the sibling is the
  nearest of the 2N - 1 other views).
- `simsiam` (Chen & He 2021): no negatives; each view's prediction is pulled towards the other
  view's projection, held fixed (stop-gradient): loss = -cos(p1, sg(z2))/2 - cos(p2, sg(z1))/2,
  -1 at best. `projection_std`, the deviation of the normalized projections across the batch
  (averaged over their dimensions) times sqrt(D), watches for collapse: about 1 when they spread,
  0 when every image maps to one point.
- `swav` (Caron et al. 2020): online clustering. Each view's projection is scored against K
  learned prototypes; its code (`sinkhorn`: exp(score / epsilon) rescaled by Sinkhorn-Knopp
  iterations so that the prototypes share the *global* batch equally, which is what prevents
  collapse) is the target the other view's softmax over the prototypes (at `temperature`) must
  predict: loss = -(q2 . log p1 + q1 . log p2) / 2. Under a strategy the Sinkhorn sums are
  all-reduced over replicas. With as many prototypes as the data has classes (the digits: 10),
  the codes become class-like clusters, which is what a probe with 4 labels a class needs.
  `code_agreement`: the two views' codes pick the same prototype.

Evaluation each epoch (log_epoch, on the chief; evaluation/embedding.py): the validation split's
embeddings (the encoder's output, gathered by the loop from `eval_step`) are scored by
- `probe_accuracy`: a linear probe (softmax regression, numpy) on the frozen embeddings of the
  first `probe_per_class` training images of each class (default 4: 40 digits, 1% of 4,000), in
  the split's order as loaded: the rule of `data.per_class` (training/data.py's `subset`, called
  here), so a classifier trained from scratch with `--set data.per_class=4` sees the same images;
- `knn_accuracy`: k-NN (cosine, k = `knn_k`, weighted) against the first `knn_per_class`
  training images of each class (default 0: all the training labels, the usual SSL monitor).
The validation `loss` is the training loss on two views of each validation image drawn from
fixed seeds (the same views every epoch), in batches mixed as training's are: a split stored by
class (the bundled digits' test split is) is shuffled once with a fixed seed (`inputs`), since a
batch of one class has no negatives for NT-Xent and cannot spread over SwAV's prototypes. A grid
of views (`views`: an image and its two views on a row) is drawn each epoch.

The export is the encoder: task kind `embedding` (zoo/tasks.py), images -> embedding.
"""

import math

import numpy as np
import tensorflow as tf

from evaluation import embedding as scores
from training import data, summaries
from training.tasks.base import EXAMPLES, Task, apply_gradients, regularization_loss
from training.tasks.classification import warp

EVAL_SEED = 20_260_101  # the validation views' fixed seed
SHUFFLE_BUFFER = 10_000  # the splits' one fixed shuffle (`inputs`)


class _SelfSupervised(Task):
    kind = "embedding"
    image_key, label_key = "image", "label"
    calibration_bytes = 16 * 2**20

    def __init__(self, config, source):
        super().__init__(config, source)
        self.class_names = source.class_names
        self.image_shape = tuple(source.features[self.image_key].shape)
        c = config
        self.zoom = tuple(float(v) for v in c.get("zoom", (0.8, 1.5)))  # >1 magnifies (crops)
        self.aspect = float(c.get("aspect", 0.15))  # log aspect ratio, either way
        self.rotation = float(c.get("rotation", 15.0))  # degrees, either way
        self.shift = float(c.get("shift", 0.15))  # of the height/width, either way
        self.brightness = float(c.get("brightness", 0.2))  # of 255, either way
        self.contrast = float(c.get("contrast", 0.4))  # factor 1 +- contrast
        self.noise = float(c.get("noise", 0.05))  # Gaussian, std as a fraction of 255
        self.labelled_split = c.get("labelled_split", "train")
        self.probe_per_class = int(c.get("probe_per_class", 4))
        self.probe_l2 = float(c.get("probe_l2", 1e-3))
        self.knn_per_class = int(c.get("knn_per_class", 0))
        self.knn_k = int(c.get("knn_k", 20))
        if len(self.zoom) != 2 or not 0 < self.zoom[0] <= self.zoom[1]:
            raise ValueError(f"task.zoom={list(self.zoom)}: expected [low, high], 0 < low <= high")
        if self.probe_per_class < 1 or self.knn_k < 1:
            raise ValueError("task.probe_per_class and task.knn_k must be at least 1")
        self._labelled = {}  # per_class -> (images, labels), loaded once
        self._embed = (None, None)  # (model, its compiled embedding function)

    def model_overrides(self):
        return {"input_shape": self.image_shape}

    def inputs(self, ds):
        # one fixed order (the cache keeps it), so that every batch mixes the classes
        ds = ds.shuffle(SHUFFLE_BUFFER, seed=EVAL_SEED, reshuffle_each_iteration=False)
        return super().inputs(ds)

    def preprocess(self, example):
        return tf.cast(example[self.image_key], tf.float32), example[self.label_key]

    # -- views -------------------------------------------------------------------------------
    @property
    def augment(self):
        def two_views(image, label, seed):
            del label  # not used to train
            return self.view(image, seed), self.view(image, seed + [0, 1 << 40])

        return two_views

    def view(self, image, seed):
        """One augmented view of an image (0..255): warp, brightness, contrast, noise."""
        height, width, _ = self.image_shape
        seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 3)
        u = tf.random.stateless_uniform([7], seed=seeds[0], minval=-1.0, maxval=1.0)
        low, high = math.log(self.zoom[0]), math.log(self.zoom[1])
        zoom = tf.exp(low + (u[0] + 1.0) / 2.0 * (high - low))
        stretch = tf.exp(u[1] * self.aspect)
        zx, zy = zoom * stretch, zoom / stretch
        angle = u[2] * self.rotation * math.pi / 180.0
        tx, ty = u[3] * self.shift * width, u[4] * self.shift * height
        cos, sin = tf.cos(angle), tf.sin(angle)
        # M = diag(1/zx, 1/zy) R(angle)
        matrix = (cos / zx, -sin / zx, sin / zy, cos / zy)
        warped = warp(image, (height, width), matrix, tx, ty)
        mean = tf.reduce_mean(warped)
        x = (warped - mean) * (1.0 + u[5] * self.contrast) + mean + u[6] * self.brightness * 255.0
        x += tf.random.stateless_normal(tf.shape(x), seed=seeds[1]) * self.noise * 255.0
        return tf.ensure_shape(tf.clip_by_value(x, 0.0, 255.0), self.image_shape)

    def _eval_views(self, images):
        def both(args):
            image, i = args
            seed = tf.stack([tf.constant(EVAL_SEED, tf.int64), i])
            return self.augment(image, 0, seed)

        index = tf.range(tf.shape(images)[0], dtype=tf.int64)
        spec = tf.TensorSpec(self.image_shape, tf.float32)
        return tf.map_fn(both, (images, index), fn_output_signature=(spec, spec))

    # -- steps -------------------------------------------------------------------------------
    def losses(self, model, view1, view2, training):
        """Per-image losses [B] and the task's other per-image sums (dict of [B] or scalars)."""
        raise NotImplementedError

    def train_step(self, model, optimizers, batch, global_batch_size):
        view1, view2 = batch
        optimizer = optimizers["model"]
        with tf.GradientTape() as tape:
            per_image, sums = self.losses(model, view1, view2, training=True)
            loss = tf.reduce_sum(per_image) / global_batch_size + regularization_loss(model)
        apply_gradients(optimizer, tape, loss, model.trainable_variables)
        return {"loss": tf.reduce_sum(per_image), **sums, "count": _count(view1)}

    def eval_step(self, model, batch):
        images, labels = batch
        view1, view2 = self._eval_views(images)
        per_image, sums = self.losses(model, view1, view2, training=False)
        embedding = tf.cast(model(images, training=False)["embedding"], tf.float32)
        return {
            "loss": tf.reduce_sum(per_image),
            **sums,
            "count": _count(images),
            EXAMPLES: {"embedding": embedding, "label": labels},
        }

    # -- scores each epoch -------------------------------------------------------------------
    def labelled(self, per_class):
        """(images, labels) of the first `per_class` images of each class of the labelled split,
        in its order as loaded (data.subset's rule, data.per_class's); 0: all of them."""
        if per_class not in self._labelled:
            source = data.subset(self.source, None, per_class, self.labelled_split)
            pairs = [
                (ex[self.image_key], ex[self.label_key])
                for ex in source.load(self.labelled_split).as_numpy_iterator()
            ]
            images = np.stack([p[0] for p in pairs]).astype(np.float32)
            self._labelled[per_class] = images, np.array([p[1] for p in pairs], np.int64)
        return self._labelled[per_class]

    def embed(self, model, images, batch=500) -> np.ndarray:
        if self._embed[0] is not model:
            fn = tf.function(lambda x: tf.cast(model(x, training=False)["embedding"], tf.float32))
            self._embed = (model, fn)
        fn = self._embed[1]
        return np.concatenate(
            [fn(tf.constant(images[i : i + batch])).numpy() for i in range(0, len(images), batch)]
        )

    def scores(self, model, val_embeddings, val_labels) -> dict:
        """`probe_accuracy` and `knn_accuracy` of the encoder on the validation embeddings."""
        num_classes = max(len(self.class_names), int(val_labels.max()) + 1)
        x, y = self.labelled(self.probe_per_class)
        probe = scores.probe_accuracy(
            self.embed(model, x), y, val_embeddings, val_labels, num_classes, l2=self.probe_l2
        )
        x, y = self.labelled(self.knn_per_class)
        knn = scores.knn_accuracy(self.embed(model, x), y, val_embeddings, val_labels, self.knn_k)
        return {"probe_accuracy": probe, "knn_accuracy": knn}

    def log_epoch(self, model, sample, totals, step):
        found = {}
        if EXAMPLES in totals and self.class_names:
            examples = totals[EXAMPLES]
            found = self.scores(model, examples["embedding"], examples["label"])
        images = sample[0][:8]
        view1, view2 = (v.numpy() for v in self._eval_views(tf.constant(images)))
        rows = np.stack([images, view1, view2], axis=1).reshape(-1, *self.image_shape)
        captions = ["image", "view 1", "view 2"] * len(images)
        summaries.image("views", summaries.grid(rows, captions, columns=6), step)
        return found

    # -- export ------------------------------------------------------------------------------
    def calibration(self, train, test):
        per_example = int(np.prod(self.image_shape)) * 4
        test_n = max(1, min(2000, self.calibration_bytes // per_example))
        x_train = np.stack(
            [x for x, _ in train.shuffle(4096, seed=0).take(200).as_numpy_iterator()]
        )
        pairs = list(test.take(test_n).as_numpy_iterator())
        arrays = {"representative": x_train, "x_test": np.stack([x for x, _ in pairs])}
        if self.class_names:  # the TFLite report scores the embeddings by k-NN among them
            arrays["y_test"] = np.array([y for _, y in pairs])
        return arrays

    def export_info(self):
        return {"image_shape": list(self.image_shape)}


class SimCLR(_SelfSupervised):
    name = "simclr"

    def __init__(self, config, source):
        super().__init__(config, source)
        self.temperature = float(config.get("temperature", 0.2))
        if self.temperature <= 0:
            raise ValueError(f"task.temperature={self.temperature}: expected > 0")

    def losses(self, model, view1, view2, training):
        z = model(tf.concat([view1, view2], 0), training=training)["projection"]
        z1, z2 = tf.split(tf.cast(z, tf.float32), 2)
        per_image, correct = nt_xent(z1, z2, self.temperature)
        return per_image, {"contrast_accuracy": tf.reduce_sum(correct)}


class SimSiam(_SelfSupervised):
    name = "simsiam"

    def losses(self, model, view1, view2, training):
        out = model(tf.concat([view1, view2], 0), training=training)
        z1, z2 = tf.split(tf.cast(out["projection"], tf.float32), 2)
        p1, p2 = tf.split(tf.cast(out["prediction"], tf.float32), 2)
        per_image = -0.5 * (_cosine(p1, tf.stop_gradient(z2)) + _cosine(p2, tf.stop_gradient(z1)))
        normalized = tf.math.l2_normalize(z1, axis=-1)
        spread = tf.reduce_mean(tf.math.reduce_std(normalized, axis=0))
        spread *= tf.sqrt(tf.cast(tf.shape(z1)[-1], tf.float32))
        return per_image, {"projection_std": spread * _count(view1)}


class SwAV(_SelfSupervised):
    name = "swav"

    def __init__(self, config, source):
        super().__init__(config, source)
        self.temperature = float(config.get("temperature", 0.1))
        self.epsilon = float(config.get("epsilon", 0.05))
        self.sinkhorn_iterations = int(config.get("sinkhorn_iterations", 3))
        if self.temperature <= 0 or self.epsilon <= 0 or self.sinkhorn_iterations < 1:
            raise ValueError(
                "task.temperature and task.epsilon must be > 0, task.sinkhorn_iterations >= 1"
            )

    def losses(self, model, view1, view2, training):
        scores = model(tf.concat([view1, view2], 0), training=training)["scores"]
        s1, s2 = tf.split(tf.cast(scores, tf.float32), 2)
        per_image, agree = swapped_prediction(
            s1, s2, self.temperature, self.epsilon, self.sinkhorn_iterations
        )
        return per_image, {"code_agreement": tf.reduce_sum(agree)}


def swapped_prediction(s1, s2, temperature, epsilon, iterations):
    """SwAV's loss for the prototype scores [B,K] of two views of B images: (loss [B], the two
    views' codes agree on their largest prototype [B]). Each view's softmax over the prototypes
    (at `temperature`) predicts the other view's Sinkhorn code."""
    q1, q2 = sinkhorn(s1, epsilon, iterations), sinkhorn(s2, epsilon, iterations)
    log_p1 = tf.nn.log_softmax(s1 / temperature)
    log_p2 = tf.nn.log_softmax(s2 / temperature)
    per_image = -0.5 * tf.reduce_sum(q2 * log_p1 + q1 * log_p2, -1)
    agree = tf.cast(tf.equal(tf.argmax(q1, -1), tf.argmax(q2, -1)), tf.float32)
    return per_image, agree


def sinkhorn(scores, epsilon, iterations):
    """SwAV's codes for a batch of prototype scores [B,K]: exp(scores / epsilon) scaled by
    Sinkhorn-Knopp iterations so that over the *global* batch (summed over replicas) each
    prototype gets an equal share, and each image's code sums to one. No gradient."""
    scores = tf.stop_gradient(scores)
    context = tf.distribute.get_replica_context()

    def total(x):
        if context is not None and context.num_replicas_in_sync > 1:
            return context.all_reduce("sum", x)
        return x

    # every score is a cosine in [-1, 1]: subtracting 1/epsilon keeps exp() in range
    q = tf.exp((scores - 1.0) / epsilon)
    count = total(tf.cast(tf.shape(q)[0], tf.float32))
    prototypes = tf.cast(tf.shape(q)[1], tf.float32)
    q /= total(tf.reduce_sum(q))
    for _ in range(iterations):
        q /= total(tf.reduce_sum(q, 0, keepdims=True)) * prototypes  # each prototype 1/K
        q /= tf.reduce_sum(q, 1, keepdims=True) * count  # each image 1/B
    return q * count


def nt_xent(z1, z2, temperature):
    """NT-Xent over the global batch, per local image: (loss [B], sibling ranked first [B]).

    Local projections z1, z2 [B,D] (the two views); every replica's are gathered (all_gather in
    the replica context; the identity on one device) into [G,D] each, and this replica's images
    start at `offset`, the sizes of the replicas before it. Each local view is an anchor against
    the 2G views but itself; its sibling is the positive. The image's loss is the mean of its two
    views' cross-entropies, so summing over all replicas and dividing by G gives SimCLR's loss."""
    z1, z2 = tf.math.l2_normalize(z1, axis=-1), tf.math.l2_normalize(z2, axis=-1)
    context = tf.distribute.get_replica_context()
    local = tf.shape(z1)[0]
    if context is not None and context.num_replicas_in_sync > 1:
        sizes = context.all_gather(local[None], axis=0)
        offset = tf.reduce_sum(sizes[: context.replica_id_in_sync_group])
        all1, all2 = context.all_gather(z1, axis=0), context.all_gather(z2, axis=0)
    else:
        offset, all1, all2 = 0, z1, z2
    total = tf.shape(all1)[0]
    keys = tf.concat([all1, all2], 0)  # [2G, D]
    mine = offset + tf.range(local)
    large = 1e9

    def anchored(anchors, self_index, positive_index):
        logits = tf.matmul(anchors, keys, transpose_b=True) / temperature
        logits -= large * tf.one_hot(self_index, 2 * total)
        loss = tf.nn.sparse_softmax_cross_entropy_with_logits(positive_index, logits)
        correct = tf.equal(tf.argmax(logits, -1, output_type=tf.int32), positive_index)
        return loss, tf.cast(correct, tf.float32)

    loss1, right1 = anchored(z1, mine, total + mine)
    loss2, right2 = anchored(z2, total + mine, mine)
    return (loss1 + loss2) / 2.0, (right1 + right2) / 2.0


def _cosine(a, b):
    return tf.reduce_sum(tf.math.l2_normalize(a, -1) * tf.math.l2_normalize(b, -1), -1)


def _count(images):
    return tf.cast(tf.shape(images)[0], tf.float32)
