"""kmock's KubernetesEmulator served on 127.0.0.1 from a thread, for the official client.

kmock is asyncio; the kubernetes client and the code under test are synchronous, so the
emulator gets its own event loop in a daemon thread and the test talks to it over HTTP
like to any API server (a kubeconfig points at it).

Two gaps of kmock 0.8 are filled here, and only here:
- it parses `/api/v1/namespaces[/NAME]` as "namespace NAME, no resource", so creating,
  reading and deleting a Namespace fail; those paths are parsed as the cluster-scoped
  resource `v1/namespaces`;
- it guesses no action for PUT, so a replace is answered 404; PUT on an object is taken
  as an update (kmock merges the body into the stored object).
"""

from __future__ import annotations

import asyncio
import re
import threading
from pathlib import Path

RESOURCES = (
    "v1/namespaces",
    "v1/secrets",
    "v1/pods",
    "v1/services",
    "v1/configmaps",
    "v1/persistentvolumeclaims",
    "apps/v1/deployments",
    "apps/v1/statefulsets",
    "batch/v1/jobs",
    "networking.k8s.io/v1/ingresses",
    "networking.k8s.io/v1/networkpolicies",
)
_NAMESPACE_PATH = re.compile(r"^/api/v1/namespaces(?:/([^/]+))?(?:/(status|finalize))?/?$")


def patch_kmock(monkeypatch) -> None:
    from kmock._internal import enums, parsing

    parse_path, guess_k8s = parsing.parse_path, parsing.guess_k8s

    def parse_namespaces_too(path: str):
        match = _NAMESPACE_PATH.match(path)
        if match is None:
            return parse_path(path)
        return parsing.ParsedPath(
            group="",
            version="v1",
            plural="namespaces",
            namespace=None,
            name=match.group(1),
            subresource=match.group(2),
        )

    def guess_put_as_update(k8s, method, query):
        if method == enums.method.PUT and k8s.group is not None and k8s.name is not None:
            return enums.action.UPDATE
        return guess_k8s(k8s, method, query)

    monkeypatch.setattr(parsing, "parse_path", parse_namespaces_too)
    monkeypatch.setattr(parsing, "guess_k8s", guess_put_as_update)


class Emulator:
    """The running emulator: `url`, `kubeconfig` (a file), `requests` (method, path)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.url = ""
        self.kubeconfig = directory / "kubeconfig.yaml"
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._handler = None
        self._thread = threading.Thread(target=self._serve, name="kmock", daemon=True)

    def __enter__(self) -> Emulator:
        started = threading.Event()
        self._started = started
        self._thread.start()
        if not started.wait(10) or not self.url:
            raise RuntimeError("the Kubernetes emulator did not start")
        self.kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\n"
            f"clusters: [{{name: kmock, cluster: {{server: '{self.url}'}}}}]\n"
            "users: [{name: test, user: {token: test-token}}]\n"
            "contexts: [{name: kmock, context: {cluster: kmock, user: test}}]\n"
            "current-context: kmock\n"
        )
        return self

    def __exit__(self, *exc_info) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self._loop.close()

    def _serve(self) -> None:
        import kmock

        async def main() -> None:
            self._stop = asyncio.Event()
            async with kmock.KubernetesEmulator() as handler, kmock.Server(handler) as server:
                for resource in RESOURCES:
                    handler.resources[resource].namespaced = resource != "v1/namespaces"
                self._handler = handler
                self.url = str(server.url).rstrip("/")
                self._started.set()
                await self._stop.wait()

        self._loop.run_until_complete(main())

    @property
    def requests(self) -> list[tuple[str, str]]:
        """(method, path) of every request served so far."""
        return [(getattr(r.method, "value", r.method), r.url.path) for r in list(self._handler)]

    @property
    def errors(self) -> list[Exception]:
        return list(self._handler.errors)
