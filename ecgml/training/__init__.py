"""Training, above inference: the loop, its page sources, the trace model's and the seed baseline's
trainers. Nothing under `ecgml.trace`, `ecgml.geometry` or `ecgml.digitize` imports this package
(checked by import-linter, see `.importlinter`)."""
