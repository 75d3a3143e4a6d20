"""Which model versions are loaded: polling, version policies, labels, safe swaps.

Follows TensorFlow Serving's manager: each poll lists the numeric folders
under every model's `base_path`, applies the version policy (`latest`,
`all`, `specific`) and loads what is wanted. Swaps preserve availability: a
version that is no longer wanted is unloaded only after a wanted one is
AVAILABLE, and never if it is the last one serving. Requests hold a handle
(`with manager.handle(...) as servable:`); a version being unloaded stops
taking new requests at once (state UNLOADING) and is released only when the
requests already running on it have finished. States are kept for
GetModelStatus, finished ones included (END, with the load error if any).
"""

import concurrent.futures
import contextlib
import dataclasses
import logging
import os
import threading
import time

from tensorflow_serving.apis import get_model_status_pb2

from serving import config as config_lib
from serving.errors import Code, ServingError, from_exception, invalid_argument, public_message

logger = logging.getLogger(__name__)
State = get_model_status_pb2.ModelVersionStatus.State


@dataclasses.dataclass
class VersionState:
    version: int
    state: int = State.START
    error_code: int = Code.OK
    error_message: str = ""
    servable: object = None
    attempts: int = 0
    last_attempt: float = 0.0


@dataclasses.dataclass
class _Model:
    config: object  # ModelConfig proto; None once removed from the config
    versions: dict = dataclasses.field(default_factory=dict)  # version -> VersionState
    labels: dict = dataclasses.field(default_factory=dict)  # label -> version
    last_error: str = ""


class ServableManager:
    def __init__(self, load, max_num_load_retries=5, load_retry_interval_seconds=60.0,
                 allow_version_labels_for_unavailable_models=False, num_load_threads=0, num_unload_threads=0,
                 allowed_model_roots=()):
        """`load(name, version, path)` returns a Servable (and may run warmup).

        `num_load_threads` > 0 loads that many versions at once (0: one after
        another); `num_unload_threads` bounds concurrent unloads (0: one at a time).
        `allowed_model_roots`: folders every model's base path must lie in (after
        resolving links); empty: anywhere.
        """
        self._roots = tuple(os.path.realpath(root) for root in allowed_model_roots)
        self._load = load
        self._load_pool = (concurrent.futures.ThreadPoolExecutor(num_load_threads, thread_name_prefix="load")
                           if num_load_threads > 0 else None)
        self._unload_slots = threading.BoundedSemaphore(max(num_unload_threads, 1))
        self._max_retries = max_num_load_retries
        self._retry_interval = load_retry_interval_seconds
        self._allow_unavailable_labels = allow_version_labels_for_unavailable_models
        self._models = {}
        self._lock = threading.Lock()  # guards _models and every VersionState
        self._poll_lock = threading.Lock()  # one poll / reload at a time
        self._stop = threading.Event()
        self._threads = []
        self._config = None  # the ModelServerConfig last applied

    # ------------------------------------------------------------------ config
    def reload_config(self, server_config):
        """Replaces the model list (ModelServerConfig), then loads what it asks for.

        Labels are checked before anything loads, as server_core.cc does: a
        label may only name an AVAILABLE version unless
        allow_version_labels_for_unavailable_models (and then only a new label).
        """
        config_lib.validate_model_server_config(server_config)
        self._check_roots(server_config)
        with self._poll_lock:
            configs = {m.name: m for m in server_config.model_config_list.config}
            labels = {name: self._check_labels(name, dict(m.version_labels)) for name, m in configs.items()}
            with self._lock:
                for name, model in self._models.items():
                    if name not in configs:
                        model.config, model.labels = None, {}
                for name, model_config in configs.items():
                    model = self._models.setdefault(name, _Model(model_config))
                    model.config, model.labels = model_config, labels[name]
            self._config = server_config
            self._poll()

    def _check_roots(self, server_config):
        """INVALID_ARGUMENT for a base path outside the allowed roots (the path itself is not echoed)."""
        if not self._roots:
            return
        for model in server_config.model_config_list.config:
            path = os.path.realpath(model.base_path)
            if not any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in self._roots):
                raise invalid_argument(f"The base_path of model {model.name} is outside the folders that "
                                       "--allowed_model_roots allows")

    def _check_labels(self, name, wanted):
        with self._lock:
            model = self._models.get(name)
            current = model.labels if model else {}
            states = model.versions if model else {}
            for label, version in wanted.items():
                available = version in states and states[version].state == State.AVAILABLE
                allowed = self._allow_unavailable_labels and current.get(label, version) == version
                if not available and not allowed:
                    raise ServingError(Code.FAILED_PRECONDITION, (
                        f"Request to assign label to version {version} of model {name}, which is not "
                        "currently available for inference"))
        return wanted

    # ------------------------------------------------------------------ polling
    def start_polling(self, interval_seconds):
        if interval_seconds and interval_seconds > 0:
            thread = threading.Thread(target=self._poll_loop, args=(interval_seconds,), name="fs-poll", daemon=True)
            thread.start()
            self._threads.append(thread)

    def start_config_polling(self, read_config, interval_seconds):
        """Re-reads the config every `interval_seconds` (--model_config_file_poll_wait_seconds)."""

        def loop():
            while not self._stop.wait(interval_seconds):
                try:
                    config = read_config()
                    if config != self._config:
                        logger.info("Model config changed; reloading")
                        self.reload_config(config)
                except Exception as error:  # noqa: BLE001 - a bad edit must not stop the server
                    logger.error("Reloading the model config failed: %s", error)

        thread = threading.Thread(target=loop, name="config-poll", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _poll_loop(self, interval):
        while not self._stop.wait(interval):
            with self._poll_lock:
                try:
                    self._poll()
                except Exception:  # noqa: BLE001 - keep polling whatever happens
                    logger.exception("Polling the model base paths failed")

    def poll(self):
        """One synchronous pass over every model (also run by the poll thread)."""
        with self._poll_lock:
            self._poll()

    def _poll(self):
        with self._lock:
            models = list(self._models.items())
        loads = []
        for name, model in models:
            if model.config is None:
                self._retire(name, model, keep=set())
                continue
            try:
                on_disk = config_lib.list_versions(model.config.base_path)
                model.last_error = ""
            except OSError as error:
                message = f"Cannot list base path {model.config.base_path} of model {name}: {error}"
                if message != model.last_error:
                    logger.warning(message)
                    model.last_error = message
                continue
            if not on_disk:
                logger.warning("No versions of servable %s found under base path %s", name, model.config.base_path)
            wanted = config_lib.aspired_versions(model.config.model_version_policy, on_disk)
            loads.append((name, model, wanted, [(version, on_disk[version]) for version in sorted(wanted, reverse=True)]))
        jobs = [(name, model, version, path) for name, model, _, versions in loads for version, path in versions]
        if self._load_pool is None:
            for job in jobs:
                self._maybe_load(*job)
        else:
            for future in [self._load_pool.submit(self._maybe_load, *job) for job in jobs]:
                future.result()
        for name, model, wanted, _ in loads:
            self._retire(name, model, keep=wanted)

    def _maybe_load(self, name, model, version, path):
        with self._lock:
            state = model.versions.get(version)
            if state is not None and state.state in (State.LOADING, State.AVAILABLE, State.UNLOADING):
                return
            if state is not None and state.error_code != Code.OK:
                if state.attempts > self._max_retries or time.monotonic() - state.last_attempt < self._retry_interval:
                    return
            if state is None or state.state == State.END and state.error_code == Code.OK:
                state = model.versions[version] = VersionState(version)
            state.state, state.attempts, state.last_attempt = State.LOADING, state.attempts + 1, time.monotonic()
        logger.info("Loading servable: {name: %s version: %d} from %s", name, version, path)
        try:
            servable = self._load(name, version, path)
        except Exception as error:  # noqa: BLE001 - a bad version must not stop the server
            failure = from_exception(error)
            if failure.code == Code.OK:
                failure = ServingError(Code.UNKNOWN, failure.message)
            logger.error("Loading servable: {name: %s version: %d} failed: %s", name, version, failure)
            message = public_message(failure.message, [model.config.base_path, path])  # status answers show no paths
            with self._lock:
                state.state, state.error_code, state.error_message = State.END, failure.code, message
            return
        with self._lock:
            state.servable, state.state = servable, State.AVAILABLE
            state.error_code, state.error_message = Code.OK, ""
        logger.info("Successfully loaded servable version {name: %s version: %d}", name, version)

    def _retire(self, name, model, keep):
        """Unloads available versions not in `keep`, never the last available one while keep has none."""
        with self._lock:
            available = {v for v, s in model.versions.items() if s.state == State.AVAILABLE}
            if model.config is not None and not available & keep:
                return  # availability preserving: nothing wanted is serving yet
            leaving = [model.versions[v] for v in sorted(available - keep)]
            for state in leaving:
                state.state = State.UNLOADING  # no new requests from now on
        self._threads = [t for t in self._threads if t.is_alive()]
        for state in leaving:
            thread = threading.Thread(target=self._unload, args=(name, state), name=f"unload-{name}-{state.version}",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)

    def _unload(self, name, state):
        logger.info("Unloading servable version {name: %s version: %d}", name, state.version)
        state.servable.wait_idle()  # requests already running on it finish first
        with self._unload_slots:
            state.servable.unload()
        with self._lock:
            state.servable, state.state = None, State.END
        logger.info("Done unloading servable version {name: %s version: %d}", name, state.version)

    # ------------------------------------------------------------------ requests
    def resolve(self, name, version=None, label=None):
        """The version a request means (label -> version), without taking a handle."""
        if not name:
            raise invalid_argument("ModelSpec has no name specified.")
        if label is not None:
            with self._lock:
                model = self._models.get(name)
                labels = model.labels if model else {}
            if label not in labels:
                raise invalid_argument(f"Unrecognized servable version label: {label}")
            return labels[label]
        return version

    @contextlib.contextmanager
    def handle(self, name, version=None, label=None):
        """Holds a loaded version for the duration of a request."""
        version = self.resolve(name, version, label)
        with self._lock:
            model = self._models.get(name)
            states = model.versions if model and model.config is not None else {}
            available = [v for v, s in states.items() if s.state == State.AVAILABLE]
            chosen = max(available) if version is None and available else version
            if chosen not in available:
                request = f"Latest({name})" if version is None else f"Specific({name}, {version})"
                raise ServingError(Code.NOT_FOUND, f"Servable not found for request: {request}")
            servable = states[chosen].servable
            servable.acquire()
        try:
            yield servable
        finally:
            servable.release()

    def status(self, name, version=None):
        """[(version, state, error_code, error_message)] as GetModelStatus reports them."""
        with self._lock:
            model = self._models.get(name)
            states = dict(model.versions) if model else {}
            rows = {v: (v, s.state, s.error_code, s.error_message) for v, s in states.items()}
        if version is not None:
            if version not in rows:
                raise ServingError(Code.NOT_FOUND, f"Could not find version {version} of model {name}")
            return [rows[version]]
        if not rows:
            raise ServingError(Code.NOT_FOUND, f"Could not find any versions of model {name}")
        return [rows[v] for v in sorted(rows)]

    def model_names(self):
        """The configured models' names, sorted."""
        with self._lock:
            return sorted(n for n, m in self._models.items() if m.config is not None)

    def available(self):
        """{model name: [available versions]} (for logs and tests)."""
        with self._lock:
            return {n: sorted(v for v, s in m.versions.items() if s.state == State.AVAILABLE)
                    for n, m in self._models.items() if m.config is not None}

    def stop(self, timeout=None):
        """Stops polling and unloads everything (after in-flight requests finish)."""
        self._stop.set()
        with self._poll_lock:
            with self._lock:
                for model in self._models.values():
                    model.config = None
            for name, model in list(self._models.items()):
                self._retire(name, model, keep=set())
        for thread in self._threads:
            thread.join(timeout)
        if self._load_pool is not None:
            self._load_pool.shutdown(wait=False)
