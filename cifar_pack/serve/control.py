"""Model control: Triton's model repository extension (index, load, unload) over the service.

A mixin of ``InferenceService``: loads build and warm a model off the event loop, then swap it in
while requests in flight finish on the old one; one load runs at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection

from ..runtime.errors import ModelError, UsageError
from .batcher import DynamicBatcher
from .config import Batching, ModelControl
from .errors import Conflict, InvalidInput, NotFound
from .models import ServedModel, warm_up
from .repository import Repository, load_one, repository_names, without_root


class RepositoryControl:
    """Index, load and unload; the service's attributes it works on are declared here."""

    models: dict[str, ServedModel]
    batchers: dict[str, DynamicBatcher]
    failures: dict[str, str]
    repository: Repository | None
    batching: Batching
    default: ServedModel
    _loading: asyncio.Lock
    _add: Callable[[ServedModel], DynamicBatcher | None]

    def repository_index(self) -> list[dict]:
        """Every model folder of the repository: name, version when served, state, reason when not."""
        if self.repository is None:
            raise InvalidInput("no model repository: serve --model-repository DIR to have an index")
        repo = self.repository
        index = []
        for name in repository_names(repo.root):
            if name in self.models:
                index.append({"name": name, "version": self.models[name].version, "state": "READY"})
            else:
                reason = self.failures.get(name, "not loaded")
                index.append({"name": name, "state": "UNAVAILABLE", "reason": reason})
        return index

    async def load(self, name: str, parameters: Collection[str] = ()) -> ServedModel:
        """(Re)load ``name`` from the repository: built and warmed before it replaces the served one,
        whose requests in flight finish on it. A model that fails leaves the others (and itself, if
        it was served) as they were, and the reason in the index.

        ``parameters``: the names of the load request's parameters. Triton takes a config override
        and model files there; each model's contract here comes from its .onnx, so any is refused
        rather than ignored."""
        repo = self._control()
        if parameters:
            shown = ", ".join(sorted(str(p)[:40] for p in parameters)[:5])
            raise InvalidInput(
                f"load parameters are not supported ({shown}): each model's settings come from its .onnx"
            )
        if name not in repository_names(repo.root):
            raise NotFound(f"no model folder {name[:80]!r} in the repository")
        # One load at a time: the --max-models check and the swap happen with no other load between
        # them (checked before the load's await, twelve concurrent loads all passed a cap of 2).
        async with self._loading:
            return await self._load_locked(repo, name)

    async def _load_locked(self, repo: Repository, name: str) -> ServedModel:
        if name not in self.models and len(self.models) >= repo.max_models:
            raise Conflict(f"{len(self.models)} models are served, the --max-models cap; unload one first")
        try:
            model = await asyncio.to_thread(
                lambda: warm_up(load_one(repo.root, name, repo.engine), self.batching.max_batch_size)
            )
        except (ModelError, UsageError) as exc:
            self.failures[name] = reason = without_root(str(exc), repo.root)
            raise InvalidInput(f"model '{name}' failed to load: {reason}") from None
        old = self._add(model)
        if self.default.name == name:
            self.default = model
        if old is not None:
            asyncio.get_running_loop().create_task(retire(old))
        return model

    async def unload(self, name: str) -> None:
        """Stop serving ``name``: new requests get NotFound, those in flight finish."""
        self._control()
        if name not in self.models:
            raise NotFound(f"model '{name[:80]}' is not loaded")
        if len(self.models) == 1:
            raise InvalidInput(f"model '{name[:80]}' is the last one served; load another first")
        del self.models[name]
        asyncio.get_running_loop().create_task(retire(self.batchers.pop(name)))
        if self.default.name == name:
            self.default = next(iter(self.models.values()))

    def _control(self) -> Repository:
        if self.repository is None or self.repository.mode != ModelControl.explicit:
            raise InvalidInput(
                "model control is off: serve --model-repository DIR --model-control-mode explicit to load and unload"
            )
        return self.repository


async def retire(batcher: DynamicBatcher) -> None:
    """A replaced or unloaded model's batcher: its requests in flight finish, then it closes."""
    await batcher.drain()
    await batcher.close()
