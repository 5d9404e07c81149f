"""A CPU stand-in for NDIF's dispatcher and model actor (test infrastructure).

NDIF's own actor runs on Ray and needs a GPU; this worker does what it does for
one request at a time: it takes requests from the API service's Redis queue,
rebuilds each trace against the model named by its key (loaded on first use,
float32, sdpa attention, as NDIF serves), runs it with ndif's own
``prepare_traced_block`` / ``execute_traced_block``, and responds through Redis
so the API service forwards the result to the client.

It also publishes what NDIF's controller publishes (``status``, ``env`` and the
``ray:connected`` gate), so ``/status`` lists the models it serves.

``induction_nnsight`` is made unimportable here, as it is on NDIF: a trace that
needs it must have shipped it by value.

    python ndif_worker.py --redis-url redis://127.0.0.1:PORT/0 --model-key KEY [...] --ready-file PATH
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.abc
import importlib.util
import io
import json
import os
import pickle
import signal
import sys
import traceback

HIDDEN = "induction_nnsight"


class _Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname == HIDDEN or fullname.startswith(HIDDEN + "."):
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--model-key", action="append", required=True)
    parser.add_argument("--ready-file", required=True)
    args = parser.parse_args()

    sys.meta_path.insert(0, _Hide())  # an editable install would otherwise find it
    try:
        importable = importlib.util.find_spec(HIDDEN) is not None
    except ModuleNotFoundError:
        importable = False
    print(f"[worker] {HIDDEN} importable: {'yes' if importable else 'no'}", flush=True)

    os.environ["NDIF_REDIS_URL"] = args.redis_url
    import redis
    import torch
    import zstandard
    from ndif.common.errors import RequestError
    from ndif.common.providers.redis import RedisProvider
    from ndif.common.redis import ENV_KEY, STATUS_KEY
    from ndif.common.schema import BackendRequestModel, Status
    from ndif.services.api.queue.config import CONFIG as QUEUE_CONFIG
    from ndif.services.ray.deployments.modeling.nns import block_scope, execute_traced_block, prepare_traced_block
    from ndif.services.ray.deployments.modeling.util import LogStream, cpu_pickle_module
    from nnsight.modeling.huggingface import HuggingFaceModel
    from nnsight.ndif import get_local_env
    from nnsight.tracing.util import clean_traceback

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))

    queue = redis.Redis.from_url(args.redis_url, socket_timeout=None)
    deployments = {}
    for key in args.model_key:
        info = json.loads(key.split(":", 1)[1])
        deployments[f"ModelActor:{key}:0"] = {
            "application_state": "RUNNING",
            "deployment_level": "HOT",
            "model_key": key,
            "repo_id": info.get("repo_id"),
            "revision": info.get("revision"),
            "task": info.get("task"),
        }
    queue.set(STATUS_KEY, json.dumps({"deployments": deployments}))
    queue.set(ENV_KEY, json.dumps(get_local_env()))
    queue.set("ray:connected", "1")  # the API's gate on /request and /status
    open(args.ready_file, "w").close()
    print(f"[worker] ready, serving {len(deployments)} model(s)", flush=True)

    models = {}
    while not stop:
        item = queue.brpop(QUEUE_CONFIG.queue_key, timeout=1)
        if item is None:
            continue
        request = pickle.loads(item[1])
        if request.model_key not in args.model_key:
            request.respond(Status.ERROR, f"Model {request.model_key} is not deployed.")
            continue
        request.respond(Status.RUNNING, "Your job has started running.")
        try:
            if request.model_key not in models:
                model = HuggingFaceModel.from_model_key(
                    request.model_key, dispatch=True, dtype=torch.float32, attn_implementation="sdpa"
                )
                model._module.requires_grad_(False)
                models[request.model_key] = model
            model = models[request.model_key]
            with block_scope():
                model._remoteable_set_env(request.env)
                out, err = LogStream(request), LogStream(request)
                try:
                    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                        tracer, _ = prepare_traced_block(
                            model, request.payload, request.compress, deserialize=BackendRequestModel.deserialize
                        )
                        saved = execute_traced_block(tracer, torch.float32)
                finally:
                    out.flush()
                    err.flush()
                    model.interleaver.cancel()
            buffer = io.BytesIO()
            torch.save(saved, buffer, pickle_module=cpu_pickle_module())
            blob = buffer.getvalue()
            if request.compress:
                blob = zstandard.ZstdCompressor(level=3).compress(blob)
        except Exception as error:
            if isinstance(error, RequestError):
                message = str(error)
            else:
                tb = clean_traceback(error.__traceback__)
                message = "".join(traceback.format_exception(type(error), error, tb))
            print(f"[worker] {request.id} error: {message.strip().splitlines()[-1]}", flush=True)
            request.respond(Status.ERROR, message)
            continue
        if len(blob) > RedisProvider.max_publish_bytes():
            request.respond(Status.ERROR, f"result of {len(blob)} bytes is too large for this test server")
            continue
        # Logged before responding, so a client that has its result can count it here.
        print(f"[worker] {request.id} completed, {len(request.payload)} bytes in, {len(blob)} bytes out", flush=True)
        request.respond(Status.COMPLETED, "Your job has been completed.", data=blob, pickled=True)

    queue.delete("ray:connected")
    print("[worker] stopped", flush=True)


if __name__ == "__main__":
    main()
