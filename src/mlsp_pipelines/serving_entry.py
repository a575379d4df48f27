"""Entry file of the audio-classifier MLflow model ("models from code"): MLflow copies it into
the model and runs it at load time to get the model object; weights and feature settings come
from the model's artefacts (see ``serving.py``)."""

from mlflow.models import set_model

from mlsp_pipelines.serving import AudioClassifier

set_model(AudioClassifier())
