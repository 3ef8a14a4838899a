"""``cifar-pack serve``: the runtime side over the network (the ``[serve]`` extra). onnxruntime,
numpy, Pillow and the ASGI stack (Starlette on uvicorn); never TensorFlow (an import-linter
contract on the folder). Nothing is imported here, so the Triton writer stays cheap to import.

    config.py      the serving defaults: batching, limits, host and port, variables
    models.py      what is served: one .onnx, or a Triton-style model repository
    repository.py  that repository's layout, and its writer (`export --triton`)
    batcher.py     dynamic batching: a bounded queue, one onnxruntime call per batch, off the event loop
    metrics.py     the Prometheus metrics
    core.py        the service core, transport-free: models, batchers, limits, API key, metrics
    protocol.py    the Open Inference Protocol (KServe v2) over HTTP: JSON and binary tensors
    http.py        the HTTP transport (Starlette): /v2/..., /predict, /metrics, the page
    grpc.py        the gRPC transport (grpcio): KServe v2's GRPCInferenceService, as Triton defines it
    server.py      uvicorn, the listening socket, SIGTERM's graceful drain
    page/          the web page served at / (HTML, CSS, JavaScript modules)
"""
