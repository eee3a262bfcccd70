"""`python -m serving <command> ...`: each command is a module of this package with `main(argv)`."""

import importlib
import sys

COMMANDS = {
    "export": ("serving.exporters", "export a training run in its recipe's formats"),
    "tflite": ("serving.exporters.tflite", "convert an export to TFLite variants + a report"),
    "serve": ("serving.server", "serve exports/ (TF Serving if installed, else the embedded one)"),
    "predict": ("serving.client", "send an image to a running server and print the top classes"),
    "config": ("serving.config", "write models.config, batching.config, monitoring.config"),
}

NEEDS_TENSORFLOW = {"export", "tflite", "serve"}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print("usage: python -m serving {" + ",".join(COMMANDS) + "} ...\n")
        for name, (_, help_) in COMMANDS.items():
            print(f"  {name:<8} {help_}")
        if argv and argv[0] not in ("-h", "--help"):
            print(f"\nerror: unknown command {argv[0]!r}", file=sys.stderr)
            return 2
        return 0 if argv else 2
    if argv[0] in NEEDS_TENSORFLOW:
        import console

        console.import_tensorflow()
    module = importlib.import_module(COMMANDS[argv[0]][0])
    return module.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
