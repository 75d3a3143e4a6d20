"""Clients for TensorFlow Serving's REST and gRPC APIs; they work against either server.

    from serving.client import RestClient, GrpcClient

    client = RestClient("localhost:8501")            # or GrpcClient("localhost:8500")
    client.status("gpt")                             # [{"version": 1, "state": "AVAILABLE", ...}]
    client.predict("gpt", {"token_ids": ids})        # {"logits": array}
    client.generate("gpt", ["Once upon a time"])     # ["... generated text"]
    client.classify("clf", [{"x": [0.5, 1.0]}])      # [[("neg", 0.3), ("pos", 0.7)]]

Both return numpy arrays cast to the signature's dtypes, so REST and gRPC
answers compare equal. `GrpcClient` is imported lazily (it needs TensorFlow
for the protos); `RestClient` needs only numpy. CLI: `python -m serving.client --help`.
"""

from serving.client.common import ServingClientError
from serving.client.rest_client import RestClient

__all__ = ["GrpcClient", "RestClient", "ServingClientError"]


def __getattr__(name):
    if name == "GrpcClient":
        from serving.client.grpc_client import GrpcClient

        return GrpcClient
    raise AttributeError(f"module 'serving.client' has no attribute {name!r}")
