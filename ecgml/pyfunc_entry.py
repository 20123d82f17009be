"""MLflow "models from code" entry: MLflow copies this file into the logged model and runs it on load.

It only names the model class, so no pickled object travels with the model (the code is the installed
`ecgml` package). Not imported by the library itself.
"""

import mlflow.models

from ecgml.serving import DigitizerModel

mlflow.models.set_model(DigitizerModel())
