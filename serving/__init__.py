"""An embedded server that speaks TensorFlow Serving's REST and gRPC protocols.

For local use, tests and small deployments; production runs the real
`tensorflow_model_server` on the same `BASE/NAME/VERSION/` SavedModel layout,
and clients work against either unchanged (see `serving/deploy/README.md`).

    python -m serving --port=8500 --rest_api_port=8501 --model_name=gpt --model_base_path=/models/gpt
    python -m serving.client --rest localhost:8501 status gpt

Python API: `ModelServer`, `ServerOptions` (server); `RestClient`,
`GrpcClient` (clients, in `serving.client`). SavedModels are loaded with
TensorFlow only; this package never imports the Keras layers or models.
"""

__all__ = ["ModelServer", "ServerOptions"]


def __getattr__(name):
    # Lazy, so that `serving.client` (REST) does not pay for importing TensorFlow.
    if name in __all__:
        from serving import server

        return getattr(server, name)
    raise AttributeError(f"module 'serving' has no attribute {name!r}")
