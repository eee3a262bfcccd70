"""Federated learning of a recipe on Flower (`python -m training federate <recipe>`).

The engine is Flower (flwr 1.42, pinned): its strategies (`flwr.server.strategy.FedAvg`,
`FedProx`) sample the clients, send the global weights, and average what comes back weighted
by example count; its simulation engine (`flwr.simulation.run_simulation`, Ray actors) runs many
virtual clients on one machine; its gRPC server and client carry real processes. The zoo provides
what each client trains: the recipe's model (`zoo.build`), data (`data.open_source`,
`data.prepared`) and task (preprocessing, augmentation, `train_step`/`eval_step`), so a federated
cnn is the very cnn that `train` trains, with the same loss.

    simulation   federate cnn --clients 100 --fraction 0.1 --rounds 50 --partition iid
    deployment   federate cnn --role server --address 127.0.0.1:9092 --clients 2 --fraction 1
                 federate cnn --role client --address 127.0.0.1:9092 --clients 2 --partition-id 0

Deployment uses `flwr.server.start_server` / `flwr.client.start_client` (one gRPC port, the
server process is the federation and runs the evaluation and run directory itself). Flower 1.42
marks them deprecated in favour of SuperLink/SuperNode processes driven by `flwr run`, which
need a packaged Flower app (a FAB built from a pyproject), three more ports per federation and
a control API between them; the two calls still work (a warning, no error), speak the same
messages to the same strategies, and start from a test on free 127.0.0.1 ports in seconds.
Moving to SuperLink/SuperNode changes the transport only: the strategy and client are the same.

Partitions of the training split (deterministic by `--seed`): `iid` (a shuffle cut into equal
parts), `pathological` (McMahan et al. 2017: sort by label, 2 x clients shards - 200 for 100
clients - two shards per client, so most clients see two digits), `dirichlet:ALPHA` (per class,
client shares drawn from Dir(ALPHA), redrawn until every client has an example).

Clients: the model, optimizer and compiled step are built once per process (a Ray actor or a
client process) and reused every round, because retracing per round would dominate the time on
a CPU. Each round a client loads the global weights, resets its optimizer's state (clients are
stateless between rounds, as in FedAvg) and trains `--local-epochs` over its examples in batches
of `--batch-size` with the recipe's optimizer at a constant rate. FedProx: Flower's strategy
sends `proximal_mu`; the client then pulls every weight towards the global one after each step,
w -= lr * mu * (w - w_global), the gradient of FedProx's proximal term applied beside the task's
own step (the task's loss stays untouched). BatchNormalization: Flower averages every array a
client returns, so moving means and variances are averaged with the weights (the common
choice); with a few local steps per round they trail the weights, so the `cnn-federated`
recipe (training/recipe_book/federated.py) drops the layer: the `cnn` recipe federated scored
chance on the test digits for 5 rounds while it trained.

Per round (TensorBoard, <logdir>/<recipe>-federated/<time>/): validation `epoch_accuracy` and
`epoch_loss` of the global model (server-side), and in train/ the client drift: the L2 norm of
each client's update (mean, max), the cosine similarity between client updates (mean over
pairs) and to their average, and the spread of the clients' train losses. The finished run
directory is a normal run's (model.keras, recipe.json, export_info.json, calibration.npz,
metrics.json) and is exported by `python -m serving export` unless `--no-export`.

Exit codes: 0 done, 2 a bad request (nothing written), 1 the federation failed.
"""

import dataclasses
import json
import os
import pathlib
import random
import sys
import time

import numpy as np

from training import tooling

ROLES = ("simulation", "server", "client")
STRATEGIES = ("fedavg", "fedprox")
TARGET = 0.95  # the accuracy whose first round metrics.json reports


def _parser():
    p = tooling.ArgumentParser(
        prog="python -m training federate", description=__doc__.splitlines()[0]
    )
    p.add_argument("recipe", help="a recipe's name")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--clients", type=int, default=100, help="how many clients share the data")
    p.add_argument("--fraction", type=float, default=0.1, help="clients sampled per round")
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--partition", default="iid", help="iid | pathological | dirichlet:ALPHA")
    p.add_argument("--local-epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=10, help="the clients' local batch size")
    p.add_argument("--strategy", choices=STRATEGIES, default="fedavg")
    p.add_argument("--proximal-mu", type=float, default=0.01, help="FedProx's mu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--target", type=float, default=TARGET, help="accuracy to count rounds to")
    p.add_argument("--logdir", default="runs")
    p.add_argument("--export-dir", default="exports")
    p.add_argument("--no-export", action="store_true")
    p.add_argument("--role", choices=ROLES, default="simulation")
    p.add_argument("--address", default="127.0.0.1:9092", help="server/client: HOST:PORT")
    p.add_argument("--partition-id", type=int, default=None, help="client: which partition")
    p.add_argument("--record", default=None, help="client: save the weights it sends, per round")
    p.add_argument("--cpus-per-client", type=float, default=1.0, help="simulation: Ray resources")
    return p


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = _parser().parse_args(argv)
        _check_args(args)
    except tooling.BadRequest as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    import console

    console.import_tensorflow()
    import zoo
    from training import data, recipes

    try:
        setup = Setup.of(args)
    except (recipes.RecipeError, data.DataError, zoo.UnknownModelError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.role == "client":
        return _run_client(setup, args)
    return _run_federation(setup, args)


def _check_args(args):
    if not 0.0 < args.fraction <= 1.0:
        raise tooling.BadRequest(f"--fraction {args.fraction}: expected a value in (0, 1]")
    for name in ("clients", "rounds", "local_epochs", "batch_size"):
        if getattr(args, name) < 1:
            raise tooling.BadRequest(f"--{name.replace('_', '-')} must be at least 1")
    parse_partition(args.partition)
    if args.role == "client":
        if args.partition_id is None or not 0 <= args.partition_id < args.clients:
            raise tooling.BadRequest(f"--role client needs --partition-id in 0..{args.clients - 1}")
    if args.role != "simulation":
        host, _, port = args.address.rpartition(":")
        if not host or not port.isdigit():
            raise tooling.BadRequest(f"--address {args.address!r}: expected HOST:PORT")


# ---------------------------------------------------------------------------------------------
# partitions


def parse_partition(spec: str) -> tuple[str, float | None]:
    if spec in ("iid", "pathological"):
        return spec, None
    if spec.startswith("dirichlet:"):
        try:
            alpha = float(spec.split(":", 1)[1])
        except ValueError:
            alpha = 0.0
        if alpha > 0:
            return "dirichlet", alpha
    raise tooling.BadRequest(
        f"--partition {spec!r}: expected iid, pathological or dirichlet:ALPHA (ALPHA > 0)"
    )


def partition(labels, clients: int, spec: str, seed: int = 0) -> list[np.ndarray]:
    """Indices of `labels` for each of `clients` clients, by `spec` (see the module docstring)."""
    labels = np.asarray(labels)
    n = len(labels)
    if clients > n:
        raise ValueError(f"--clients {clients}: more clients than the {n} training examples")
    scheme, alpha = parse_partition(spec)
    rng = np.random.default_rng(seed)
    if scheme == "iid":
        return [np.sort(p) for p in np.array_split(rng.permutation(n), clients)]
    if scheme == "pathological":
        if 2 * clients > n:
            raise ValueError(f"--clients {clients}: 2 shards each need {2 * clients} examples")
        order = rng.permutation(n)
        by_label = order[np.argsort(labels[order], kind="stable")]
        shards = np.array_split(by_label, 2 * clients)
        picked = rng.permutation(2 * clients)
        return [np.sort(np.concatenate([shards[a], shards[b]])) for a, b in picked.reshape(-1, 2)]
    classes = np.unique(labels)
    for _ in range(1000):
        parts = [[] for _ in range(clients)]
        for c in classes:
            members = rng.permutation(np.flatnonzero(labels == c))
            shares = rng.dirichlet(np.full(clients, alpha))
            cuts = (np.cumsum(shares)[:-1] * len(members)).astype(int)
            for k, piece in enumerate(np.split(members, cuts)):
                parts[k].extend(piece)
        if min(map(len, parts)) > 0:
            return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]
    raise ValueError(f"dirichlet:{alpha} left a client empty in 1,000 draws: raise ALPHA")


# ---------------------------------------------------------------------------------------------
# what the server and every client share: the recipe, the data, the task


@dataclasses.dataclass
class Setup:
    recipe: dict
    args: object
    task: object
    images: np.ndarray  # the whole training split, model-ready
    labels: np.ndarray
    parts: list
    val_ds: object
    train_ds: object

    @classmethod
    def of(cls, args) -> "Setup":
        """Everything checked and loaded; nothing written."""
        import zoo
        from training import data, recipes
        from training.tasks import get_task

        recipe = recipes.resolve(args.recipe, list(args.set))
        dcfg = recipe["data"]
        zoo.get_spec(recipe["model"]["name"])
        task_class = get_task(recipe["task"]["name"])
        if recipe["task"]["name"] != "classification":
            raise ValueError(f"federate trains classification recipes; {args.recipe!r} is not")
        source = data.open_source(dcfg["dataset"], dcfg.get("fallback"))
        source = data.subset(
            source, dcfg.get("classes"), dcfg.get("per_class", 0), dcfg["train_split"]
        )
        task = task_class(recipe["task"], source)
        train_ds = data.prepared(task.source, dcfg["train_split"], task.inputs, dcfg["cache"])
        val_ds = data.prepared(task.source, dcfg["validation_split"], task.inputs, dcfg["cache"])
        images, labels = [], []
        for x, y in train_ds.batch(1024).as_numpy_iterator():
            images.append(x)
            labels.append(y)
        images, labels = np.concatenate(images), np.concatenate(labels)
        parts = partition(labels, args.clients, args.partition, args.seed)
        return cls(recipe, args, task, images, labels, parts, val_ds, train_ds)

    def build_model(self):
        import keras

        import zoo

        keras.utils.set_random_seed(int(self.args.seed))
        overrides = {**self.task.model_overrides(), **self.recipe["model"]["overrides"]}
        return zoo.build(self.recipe["model"]["name"], tiny=self.recipe["run"]["tiny"], **overrides)


# ---------------------------------------------------------------------------------------------
# the client: a Flower NumPyClient over the zoo's task


class Trainer:
    """One process's model, optimizer and compiled steps, reused by every round and partition."""

    def __init__(self, setup: Setup):
        import tensorflow as tf

        from training import optimizers

        self.setup = setup
        self.model = setup.build_model()
        config = {**setup.recipe["optimizer"], "schedule": "constant"}
        self.lr = float(config["lr"])
        self.optimizer = optimizers.build(config, total_steps=1)
        self.optimizer.build(self.model.trainable_variables)
        task, model, opts = setup.task, self.model, {"model": self.optimizer}
        augment = task.augment

        def step(images, labels, seeds, anchor, mu):
            if augment is not None:
                images, labels = tf.map_fn(
                    lambda e: augment(e[0], e[1], e[2]),
                    (images, labels, seeds),
                    fn_output_signature=(tf.float32, labels.dtype),
                )
            batch = tf.cast(tf.shape(labels)[0], tf.float32)
            sums = task.train_step(model, opts, (images, labels), batch)
            for w, w0 in zip(model.trainable_variables, anchor):  # FedProx's proximal pull
                w.assign_sub(self.lr * mu * (w - w0))
            return sums

        self._step = tf.function(step, reduce_retracing=True)
        self._anchor = [tf.Variable(w, trainable=False) for w in model.trainable_variables]

    def fit(self, weights, indices, epochs, batch_size, mu, seed):
        import tensorflow as tf

        self.model.set_weights(weights)
        for v in self.optimizer.variables:  # a fresh optimizer state each round
            if not v.path.endswith("learning_rate"):
                v.assign(tf.zeros_like(v))
        for a, w in zip(self._anchor, self.model.trainable_variables):
            a.assign(w)
        rng = np.random.default_rng(seed)
        loss = correct = count = 0.0
        mu = tf.constant(float(mu), tf.float32)
        for _ in range(epochs):
            order = rng.permutation(indices)
            for start in range(0, len(order), batch_size):
                picked = order[start : start + batch_size]
                seeds = rng.integers(0, 2**31 - 1, size=(len(picked), 2), dtype=np.int64)
                sums = self._step(
                    tf.constant(self.setup.images[picked]),
                    tf.constant(self.setup.labels[picked]),
                    tf.constant(seeds),
                    self._anchor,
                    mu,
                )
                loss += float(sums["loss"])
                correct += float(sums["accuracy"])
                count += float(sums["count"])
        return self.model.get_weights(), {
            "train_loss": loss / max(count, 1),
            "train_accuracy": correct / max(count, 1),
        }


_TRAINERS = {}  # per process: one Trainer per (recipe, data, partition) request


def _trainer(args_dict: dict) -> Trainer:
    key = json.dumps(args_dict, sort_keys=True)
    if key not in _TRAINERS:
        _quiet_tensorflow()
        _TRAINERS[key] = Trainer(Setup.of(_Args(**args_dict)))
    return _TRAINERS[key]


def _quiet_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    try:  # a Ray actor per core: one thread each, or they fight over the cores
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass


class _Args:
    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)


def _client_args(args) -> dict:
    """What a client needs to rebuild the setup in its own process (picklable, hashable)."""
    keys = ("recipe", "set", "clients", "partition", "seed")
    return {k: getattr(args, k) for k in keys}


def make_client(args_dict: dict, partition_id: int, record: str | None = None):
    from flwr.client import NumPyClient

    class ZooClient(NumPyClient):
        def fit(self, parameters, config):
            trainer = _trainer(args_dict)
            indices = trainer.setup.parts[partition_id]
            rnd = int(config.get("round", 0))
            weights, metrics = trainer.fit(
                parameters,
                indices,
                int(config["local_epochs"]),
                int(config["batch_size"]),
                float(config.get("proximal_mu", 0.0)),
                seed=[int(args_dict["seed"]), rnd, partition_id],
            )
            if record:
                path = pathlib.Path(record, f"client{partition_id}-round{rnd}.npz")
                path.parent.mkdir(parents=True, exist_ok=True)
                arrays = {f"w{i:03d}": w for i, w in enumerate(weights)}
                np.savez(path, num_examples=len(indices), **arrays)
            return weights, len(indices), metrics

    return ZooClient()


def _run_client(setup: Setup, args) -> int:
    import flwr
    from flwr.client import start_client

    _TRAINERS[json.dumps(_client_args(args), sort_keys=True)] = Trainer(setup)
    _quiet_flower()
    client = make_client(_client_args(args), args.partition_id, args.record)
    start_client(server_address=args.address, client=client.to_client(), insecure=True)
    print(json.dumps({"client": args.partition_id, "flwr": flwr.__version__}))
    return 0


# ---------------------------------------------------------------------------------------------
# the server side: strategy, evaluation, drift statistics, the run directory


class Federation:
    """The server's half: the global model evaluated each round, drift statistics, TensorBoard."""

    def __init__(self, setup: Setup, run_dir: pathlib.Path):
        import tensorflow as tf

        self.setup, self.run_dir = setup, run_dir
        self.model = setup.build_model()
        self.trainable = [
            i
            for i, w in enumerate(self.model.weights)
            if any(w is t for t in self.model.trainable_weights)
        ]
        self.writers = {
            name: tf.summary.create_file_writer(str(run_dir / name))
            for name in ("train", "validation")
        }
        task, model = setup.task, self.model
        self._eval = tf.function(lambda b: task.eval_step(model, b))
        self.history = []
        self.failures = 0  # client rounds that failed (Flower goes on without them)
        self.current = [w.copy() for w in model.get_weights()]
        self.started = self.round_started = time.time()

    def scalars(self, writer, values: dict, step: int):
        import tensorflow as tf

        with self.writers[writer].as_default():
            for k, v in values.items():
                tf.summary.scalar(k, float(v), step=step)
        self.writers[writer].flush()

    def evaluate(self, server_round, weights, config):
        from training import data

        self.model.set_weights(weights)
        totals = {}
        batches = data.eval_batches(
            self.setup.val_ds, batch_size=int(self.setup.recipe["train"]["eval_batch_size"])
        )
        for batch in batches:
            for k, v in self._eval(batch).items():
                totals[k] = totals.get(k, 0) + np.asarray(v)
        metrics = self.setup.task.results(totals)
        self.scalars("validation", {f"epoch_{k}": v for k, v in metrics.items()}, server_round)
        seconds = time.time() - self.round_started
        self.round_started = time.time()
        self.history.append({"round": server_round, **{k: round(v, 5) for k, v in metrics.items()}})
        self.history[-1]["seconds"] = round(seconds, 2)
        rounds = self.setup.args.rounds
        print(
            f"round {server_round}/{rounds}: accuracy {metrics['accuracy']:.4f}, "
            f"loss {metrics['loss']:.4f}, {seconds:.1f} s",
            flush=True,
        )
        return float(metrics["loss"]), {"accuracy": float(metrics["accuracy"])}

    def drift(self, server_round, updates, losses):
        """Client drift of one round: how far and how differently the clients moved."""
        flat = np.stack(
            [
                np.concatenate([(w[i] - self.current[i]).ravel() for i in self.trainable])
                for w in updates
            ]
        )
        norms = np.linalg.norm(flat, axis=1)
        unit = flat / np.maximum(norms[:, None], 1e-12)
        mean_update = flat.mean(axis=0)
        stats = {
            "drift/update_norm_mean": norms.mean(),
            "drift/update_norm_max": norms.max(),
            "drift/cosine_to_mean": float(
                np.mean(unit @ mean_update) / max(np.linalg.norm(mean_update), 1e-12)
            ),
            "drift/client_loss_mean": np.mean(losses),
            "drift/client_loss_std": np.std(losses),
            "drift/client_loss_min": np.min(losses),
            "drift/client_loss_max": np.max(losses),
        }
        if len(updates) > 1:
            gram = unit @ unit.T
            stats["drift/cosine_between_mean"] = gram[np.triu_indices(len(updates), 1)].mean()
        self.scalars("train", stats, server_round)

    def strategy(self):
        from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays
        from flwr.server import strategy as strategies

        args, federation = self.setup.args, self
        base = strategies.FedProx if args.strategy == "fedprox" else strategies.FedAvg

        class Strategy(base):
            def aggregate_fit(self, server_round, results, failures):
                federation.failures += len(failures)
                updates = [parameters_to_ndarrays(r.parameters) for _, r in results]
                losses = [float(r.metrics.get("train_loss", np.nan)) for _, r in results]
                if updates:
                    federation.drift(server_round, updates, losses)
                parameters, metrics = super().aggregate_fit(server_round, results, failures)
                if parameters is not None:
                    federation.current = parameters_to_ndarrays(parameters)
                return parameters, metrics

        sampled = max(1, int(round(args.fraction * args.clients)))
        kwargs = dict(
            fraction_fit=args.fraction,
            fraction_evaluate=0.0,
            min_fit_clients=sampled,
            min_evaluate_clients=0,
            min_available_clients=args.clients if args.role == "server" else sampled,
            evaluate_fn=self.evaluate,
            on_fit_config_fn=lambda rnd: {
                "round": rnd,
                "local_epochs": args.local_epochs,
                "batch_size": args.batch_size,
            },
            initial_parameters=ndarrays_to_parameters(self.current),
            fit_metrics_aggregation_fn=_weighted_mean,
            accept_failures=False,
        )
        if args.strategy == "fedprox":
            kwargs["proximal_mu"] = args.proximal_mu
        return Strategy(**kwargs)

    def close(self):
        for w in self.writers.values():
            w.close()


def _weighted_mean(results):
    """The clients' fit metrics averaged by example count (what Flower asks the strategy for)."""
    total = sum(n for n, _ in results) or 1
    keys = set().union(*(m.keys() for _, m in results)) if results else set()
    return {k: sum(n * float(m.get(k, 0.0)) for n, m in results) / total for k in keys}


def _quiet_flower():
    import logging

    logging.getLogger("flwr").setLevel(logging.WARNING)


def _run_federation(setup: Setup, args) -> int:
    from flwr.server import ServerConfig

    random.seed(args.seed)
    run_dir = tooling.new_run_dir(args.logdir, f"{setup.recipe['name']}-federated")
    federation = Federation(setup, run_dir)
    (run_dir / "recipe.json").write_text(json.dumps(setup.recipe, indent=2) + "\n")
    settings = {k: v for k, v in vars(args).items() if k not in ("record",)}
    (run_dir / "federated.json").write_text(json.dumps(settings, indent=2) + "\n")
    n = len(setup.labels)
    print(
        f"federating {setup.recipe['model']['name']} on {setup.task.source.name}: {n} examples "
        f"over {args.clients} clients ({args.partition}), {args.fraction:g} per round, "
        f"{args.rounds} rounds, {args.strategy}, {args.role} -> {run_dir}",
        flush=True,
    )
    _quiet_flower()
    strategy = federation.strategy()
    config = ServerConfig(num_rounds=args.rounds)
    try:
        if args.role == "server":
            from flwr.server import start_server

            start_server(server_address=args.address, config=config, strategy=strategy)
        else:
            _simulate(args, strategy, config)
    finally:
        federation.close()
    if len(federation.history) < args.rounds + 1 or federation.failures:
        print(
            f"failed: {len(federation.history) - 1} of {args.rounds} rounds ran, "
            f"{federation.failures} client updates failed (see Flower's log above)",
            file=sys.stderr,
        )
        return 1
    return _finish(setup, federation, args)


def _simulate(args, strategy, config):
    from flwr.client import ClientApp
    from flwr.server import ServerApp, ServerAppComponents
    from flwr.simulation import run_simulation

    root = str(pathlib.Path(__file__).resolve().parents[1])
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # the actors inherit it
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    client_args = _client_args(args)
    print(f"starting {args.clients} virtual clients on Ray (a minute on a CPU)", flush=True)

    def client_fn(context):
        return make_client(client_args, int(context.node_config["partition-id"])).to_client()

    server = ServerApp(
        server_fn=lambda context: ServerAppComponents(strategy=strategy, config=config)
    )
    backend = {
        "client_resources": {"num_cpus": args.cpus_per_client, "num_gpus": 0.0},
        "init_args": {"logging_level": "ERROR", "include_dashboard": False},
    }
    run_simulation(
        server_app=server,
        client_app=ClientApp(client_fn=client_fn),
        num_supernodes=args.clients,
        backend_config=backend,
    )


def _finish(setup: Setup, federation: Federation, args) -> int:
    from training import cli

    run_dir, task = federation.run_dir, setup.task
    federation.model.set_weights(federation.current)
    federation.model.save(run_dir / "model.keras")
    final = federation.history[-1]
    arrays = task.calibration(setup.train_ds, setup.val_ds)
    if arrays:
        np.savez_compressed(run_dir / "calibration.npz", **arrays)
    info = {"task": task.export_kind(), **task.export_info()}
    (run_dir / "export_info.json").write_text(json.dumps(info, indent=2) + "\n")
    reached = [h["round"] for h in federation.history if h["accuracy"] >= args.target]
    seconds = time.time() - federation.started
    validation = {k: v for k, v in final.items() if k not in ("round", "seconds")}
    summary = {
        "rounds": args.rounds,
        "seconds": round(seconds, 2),
        "validation": validation,
        "target": args.target,
        "rounds_to_target": reached[0] if reached else None,
        "history": federation.history,
    }
    (run_dir / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    exported = None
    if not args.no_export and setup.recipe["export"]["formats"]:
        code, exported = cli.export(run_dir, args.export_dir)
        if code:
            print(f"failed: the export of {run_dir} (exit {code})", file=sys.stderr)
            return code
    print(
        json.dumps(
            {
                "run_dir": str(run_dir),
                "rounds": args.rounds,
                "seconds": round(seconds, 1),
                "validation": validation,
                "rounds_to_target": summary["rounds_to_target"],
                "export": exported,
            }
        ),
        flush=True,
    )
    return 0
