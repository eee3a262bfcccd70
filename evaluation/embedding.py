"""Scores of an embedding (a self-supervised encoder's output) by the labels it separates: k-NN
accuracy and a linear probe, on NumPy arrays. Training logs both each epoch (training/tasks/
ssl.py); the TFLite report scores each variant's embeddings by k-NN (evaluation/report.py).

- `knn_accuracy`: cosine similarity, the k nearest labelled embeddings vote with weight
  exp(similarity / 0.07) (Wu et al. 2018, the monitor of InstDisc, MoCo and DINO).
- `linear_probe`: a softmax regression (weights and bias, L2 penalty on the weights) on the
  L2-normalized embeddings, trained by full-batch gradient descent with Nesterov momentum from
  zeros: deterministic, with a fixed number of steps.

Written here rather than taken from scikit-learn (`KNeighborsClassifier`, `LogisticRegression`):
the project does not depend on it, and each is a few lines of NumPy on arrays this small
(thousands of embeddings).
"""

import numpy as np


def normalize(x) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def knn_predict(train, train_labels, test, k=20, temperature=0.07, num_classes=None, batch=1024):
    """The class each test embedding's k nearest train embeddings (cosine) vote for."""
    train, test = normalize(train), normalize(test)
    train_labels = np.asarray(train_labels, np.int64)
    num_classes = num_classes or int(train_labels.max()) + 1
    k = min(k, len(train))
    predicted = []
    for i in range(0, len(test), batch):
        sims = test[i : i + batch] @ train.T
        nearest = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        weights = np.exp(np.take_along_axis(sims, nearest, axis=1) / temperature)
        votes = np.zeros((len(sims), num_classes))
        np.add.at(votes, (np.arange(len(sims))[:, None], train_labels[nearest]), weights)
        predicted.append(votes.argmax(1))
    return np.concatenate(predicted)


def knn_accuracy(train, train_labels, test, test_labels, k=20, temperature=0.07) -> float:
    num_classes = int(max(np.max(train_labels), np.max(test_labels))) + 1
    predicted = knn_predict(train, train_labels, test, k, temperature, num_classes)
    return float(np.mean(predicted == np.asarray(test_labels)))


def knn_leave_one_out(embeddings, labels, k=20, temperature=0.07) -> float:
    """k-NN accuracy of a labelled sample against itself, each example left out of its own vote
    (the TFLite report's score: one sample, no train split at hand)."""
    x, labels = normalize(embeddings), np.asarray(labels, np.int64)
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    k = min(k, len(x) - 1)
    nearest = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    weights = np.exp(np.take_along_axis(sims, nearest, axis=1) / temperature)
    votes = np.zeros((len(x), int(labels.max()) + 1))
    np.add.at(votes, (np.arange(len(x))[:, None], labels[nearest]), weights)
    return float(np.mean(votes.argmax(1) == labels))


def linear_probe(train, train_labels, num_classes, *, l2=1e-3, steps=1000, lr=None):
    """(weights [D,K], bias [K]) of a softmax regression on the normalized `train` embeddings,
    minimizing mean cross-entropy + l2/2 |W|^2. The step is 1/L for the loss's smoothness L
    (the cross-entropy's Hessian is at most X^T X / 2n: unit rows make that 1/2), so it converges
    without tuning."""
    x = normalize(train)
    y = np.eye(num_classes)[np.asarray(train_labels, np.int64)]
    n, d = x.shape
    lr = lr or 1.0 / (0.5 * (np.linalg.norm(x, 2) ** 2 / n + 1.0) + l2)
    w, b = np.zeros((d, num_classes)), np.zeros(num_classes)
    vw, vb = np.zeros_like(w), np.zeros_like(b)
    for _ in range(steps):
        # Nesterov: the gradient at the look-ahead point
        lw, lb = w + 0.9 * vw, b + 0.9 * vb
        logits = x @ lw + lb
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        gw = x.T @ (p - y) / n + l2 * lw
        gb = (p - y).mean(0)
        vw, vb = 0.9 * vw - lr * gw, 0.9 * vb - lr * gb
        w, b = w + vw, b + vb
    return w, b


def probe_accuracy(train, train_labels, test, test_labels, num_classes=None, **options) -> float:
    """Accuracy on `test` of a linear probe trained on `train` (see linear_probe)."""
    num_classes = num_classes or int(max(np.max(train_labels), np.max(test_labels))) + 1
    w, b = linear_probe(train, train_labels, num_classes, **options)
    predicted = (normalize(test) @ w + b).argmax(1)
    return float(np.mean(predicted == np.asarray(test_labels)))
