"""The HTTP face of the stand-in: a kmock ``KubernetesEmulator`` whose fallbacks are this API.

kmock keeps what it is good at: it records requests (``emulator.requests``-style assertions via
its DSL) and serves reactions a test adds for fault injection, e.g.
``sim.emulator['patch', kmock.resource('', 'v1', 'pods')] << 500``. Whatever no test reaction
answers is served here, with the apiserver's semantics (kmock's own emulation is too simple).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import aiohttp.web
import attrs
import kmock
import yaml
from kmock._internal import enums, references, rendering

from costwarden.sim import discovery, errors, openapi, protobuf, routing, tables
from costwarden.sim.addressing import Target, WriteResult
from costwarden.sim.errors import ApiError
from costwarden.sim.faults import NO_FAULT, FaultInjector, FaultPlan, lost_answer
from costwarden.sim.objects import ObjectApi
from costwarden.sim.selectors import FieldSelector, LabelSelector, SelectorError
from costwarden.sim.watching import Watch, WatchQuery
from costwarden.sim.webhooks import AdmissionWebhooks

logger = logging.getLogger(__name__)
JSON = "application/json"


def _json(
    body: Any,
    status: int = 200,
    warnings: list[str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> aiohttp.web.Response:
    sent = [("Warning", f"299 - {json.dumps(warning)}") for warning in warnings or []]
    sent += list((headers or {}).items())
    return aiohttp.web.Response(text=json.dumps(body), status=status, content_type=JSON, headers=sent)


def _decode(body: bytes, content_type: str) -> Any:
    if not body.strip():
        return None
    if "protobuf" in content_type:
        try:
            return protobuf.decode_object(body)
        except protobuf.ProtobufError as exc:
            accepted = ("application/json", "application/yaml")
            raise ApiError(
                415, "UnsupportedMediaType", f"{errors.unsupported_media_type(accepted).message} ({exc})"
            ) from exc
    if "cbor" in content_type:
        raise errors.unsupported_media_type(("application/json", "application/yaml"))
    try:
        if "yaml" in content_type:
            return yaml.safe_load(body)
        return json.loads(body)
    except (ValueError, yaml.YAMLError) as exc:
        raise errors.bad_request(f"error decoding request body: {exc}") from exc


@attrs.define(kw_only=True)
class SimEmulator(kmock.KubernetesEmulator):
    api: ObjectApi
    clock: Callable[[], datetime]
    bookmark_interval: float = 30.0
    request_log_limit: int = 2000
    address: str = "127.0.0.1"
    webhooks: AdmissionWebhooks = attrs.field(
        default=attrs.Factory(lambda self: AdmissionWebhooks(self.api), takes_self=True)
    )
    faults: FaultInjector | None = None  # costwarden.sim.faults: None serves every request as asked

    def __attrs_post_init__(self) -> None:
        """Skip kmock's default reactions: ``_dispatch`` serves everything no test reaction takes."""

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        body = await raw_request.read()
        request = self._record(raw_request, body)
        injector = self.faults
        plan = NO_FAULT
        if injector is not None:
            plan = injector.plan(raw_request.method, raw_request.path, raw_request.query)
            await injector.wait(plan)
        try:
            if plan.answer is not None:
                error, headers = plan.answer
                return _json(error.status(), error.code, headers=headers)
            try:
                response = await kmock.RawHandler._handle(self, request)
            except NotImplementedError:
                response = await self._dispatch(raw_request, body, plan)
            if plan.lost and injector is not None and 200 <= response.status < 300:
                injector.count("lost", raw_request.method, raw_request.path)  # done, told it timed out
                return _json(lost_answer().status(), 504)
            return response
        except ApiError as exc:
            return _json(exc.status(), exc.code)
        except Exception as exc:
            logger.exception("The API stand-in failed on %s %s", raw_request.method, raw_request.path_qs)
            return _json(ApiError(500, "InternalError", f"Internal error occurred: {exc!r}").status(), 500)

    def _record(self, raw: aiohttp.web.BaseRequest, body: bytes) -> rendering.Request:
        try:
            path = routing.parse_api_path(raw.path)
        except ApiError:
            path = None
        try:
            data = json.loads(body) if body else None
        except ValueError:
            data = None
        request = rendering.Request(
            id=len(self._requests),
            raw_request=raw,
            url=raw.url,
            method=raw.method,
            params=dict(raw.query),
            headers=dict(raw.headers),
            data=data,
            body=body,
            text=body.decode("utf-8", "replace"),
            action=parsing_action(raw.method, raw.query, path),
            resource=references.resource(path.group, path.version, path.plural)
            if path and path.plural
            else None,
            namespace=path.namespace if path else None,
            name=path.name if path else None,
            subresource=path.subresource if path else None,
        )
        self._requests.append(request)
        if len(self._requests) > 2 * self.request_log_limit:
            del self._requests[: -self.request_log_limit]
        return request

    async def _dispatch(
        self, raw: aiohttp.web.BaseRequest, body: bytes, plan: FaultPlan = NO_FAULT
    ) -> aiohttp.web.StreamResponse:
        path = raw.path.rstrip("/") or "/"
        if raw.method == "GET":
            document = self._static_document(path)
            if document is not None:
                return document
        api_path = routing.parse_api_path(path)
        if api_path is None:
            raise errors.no_such_resource()
        if api_path.plural is None:
            if raw.method != "GET":
                raise errors.method_not_allowed(raw.method)
            listing = discovery.resource_list(self.api.registry, api_path.group, api_path.version)
            if listing is None:
                raise errors.no_such_resource()
            return _json(listing)
        return await self._respond_resource(raw, api_path, body, plan)

    def _static_document(self, path: str) -> aiohttp.web.StreamResponse | None:
        registry = self.api.registry
        if path in ("/healthz", "/livez", "/readyz"):
            return aiohttp.web.Response(text="ok")
        documents: dict[str, Callable[[], Any]] = {
            "/": lambda: discovery.root_paths(registry),
            "/version": lambda: discovery.SERVER_VERSION,
            "/api": lambda: discovery.api_versions(self.address),
            "/apis": lambda: discovery.api_group_list(registry),
            "/openapi/v3": lambda: openapi.root_document(registry),
        }
        if path in documents:
            return _json(documents[path]())
        if path.startswith("/openapi/v3/"):
            rest = path.removeprefix("/openapi/v3/").split("/")
            group, version = (
                ("", rest[1])
                if rest[0] == "api" and len(rest) == 2
                else (rest[1], rest[2])
                if len(rest) == 3
                else ("", "")
            )
            document = openapi.group_version_document(registry, group, version) if version else None
            if document is None:
                raise errors.no_such_resource()
            return _json(document)
        if path.startswith("/apis/") and path.count("/") == 2:
            group_doc = discovery.api_group(registry, path.split("/")[2])
            if group_doc is None:
                raise errors.no_such_resource()
            return _json(group_doc)
        return None

    def _target(self, api_path: routing.ApiPath) -> Target:
        assert api_path.plural is not None
        info = self.api.registry.lookup(api_path.group, api_path.version, api_path.plural)
        if info is None or (api_path.namespace is not None and not info.namespaced):
            raise errors.no_such_resource()
        if api_path.subresource is not None and api_path.subresource not in info.subresources:
            raise errors.no_such_resource()
        return Target(info, api_path.version, api_path.namespace, api_path.name, api_path.subresource)

    async def _respond_resource(
        self, raw: aiohttp.web.BaseRequest, api_path: routing.ApiPath, body: bytes, plan: FaultPlan
    ) -> aiohttp.web.StreamResponse:
        target = self._target(api_path)
        query = raw.query
        accept = raw.headers.get("Accept", "")
        content_type = raw.headers.get("Content-Type", JSON).split(";")[0].strip()
        if not routing.accepts_json(accept):
            raise ApiError(406, "NotAcceptable", f"only the following media types are accepted: {JSON}")
        method = raw.method
        if method == "GET" and routing.flag(query, "watch"):
            return await self._respond_watch(raw, target, plan)
        if method == "GET" and target.name is None:
            return self._respond_list(target, query, accept)
        if method == "GET":
            obj = self.api.read(target)
            if routing.wants(accept, "Table") and target.subresource is None:
                return _json(
                    tables.table(
                        target.info,
                        target.version,
                        [obj],
                        self.clock(),
                        include=query.get("includeObject", "Metadata"),
                        resource_version=obj["metadata"]["resourceVersion"],
                    )
                )
            return _json(obj)
        if method == "DELETE" and target.name is None:
            return self._respond_delete_collection(target, query, _decode(body, content_type) or {})
        if target.subresource == "eviction":
            if method != "POST":
                raise errors.method_not_allowed(method)
            return self._respond_eviction(target, query, _decode(body, content_type) or {})
        if (target.name is None) != (method == "POST"):
            raise errors.method_not_allowed(method)
        payload = _decode(body, content_type)
        if method == "DELETE":
            options = payload if isinstance(payload, Mapping) else {}
            return _json(self.api.delete(target, options, routing.write_options(query, options)))
        opts = routing.write_options(query)
        if method == "PATCH":
            patch = functools.partial(self.api.patch, target, content_type, payload)
            return self._written(await self.webhooks.update(target, patch, opts))
        if not isinstance(payload, Mapping):
            raise errors.bad_request("the request body must be a JSON object")
        if method == "POST":
            return self._written(await self.webhooks.create(target, payload, opts))
        if method == "PUT":
            replace = functools.partial(self.api.replace, target, payload)
            return self._written(await self.webhooks.update(target, replace, opts))
        raise errors.method_not_allowed(method)

    def _respond_eviction(
        self, target: Target, query: Mapping[str, str], eviction: Mapping[str, Any]
    ) -> aiohttp.web.Response:
        """``pods/eviction``: with no PodDisruptionBudgets to honour, an eviction is a delete."""
        options = eviction.get("deleteOptions") or {}
        pod = Target(target.info, target.version, target.namespace, target.name)
        self.api.delete(pod, options, routing.write_options(query, options))
        return _json(
            {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}, 201
        )

    @staticmethod
    def _written(result: WriteResult) -> aiohttp.web.Response:
        return _json(result.obj, 201 if result.created else 200, result.warnings)

    def _selectors(self, target: Target, query: Mapping[str, str]) -> tuple[LabelSelector, FieldSelector]:
        try:
            labels = LabelSelector.parse(query.get("labelSelector"))
            fields = FieldSelector.parse(
                query.get("fieldSelector"), target.info.allowed_field_labels(target.version)
            )
        except SelectorError as exc:
            raise errors.bad_request(str(exc)) from exc
        return labels, fields

    def _selected(self, target: Target, query: Mapping[str, str]) -> list[dict[str, Any]]:
        labels, fields = self._selectors(target, query)
        info = target.info
        items = self.api.store.items((info.group, info.plural), target.namespace)
        return [o for o in items if labels.matches(o) and fields.matches(o)]

    def _respond_list(self, target: Target, query: Mapping[str, str], accept: str) -> aiohttp.web.Response:
        info = target.info
        rv = str(self.api.store.resource_version)
        items, token, remaining = routing.paginate(
            self._selected(target, query), query.get("limit"), query.get("continue")
        )
        metadata: dict[str, Any] = {"resourceVersion": rv}
        if token:
            metadata.update({"continue": token, "remainingItemCount": remaining})
        if routing.wants(accept, "Table"):
            table = tables.table(
                info, target.version, items, self.clock(), include=query.get("includeObject", "Metadata")
            )
            table["metadata"] = metadata
            return _json(table)
        if routing.wants(accept, "PartialObjectMetadataList"):
            partial = [
                {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]}
                for o in items
            ]
            return _json(
                {
                    "kind": "PartialObjectMetadataList",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": metadata,
                    "items": partial,
                }
            )
        presented = [self.api.present(target, o) for o in items]
        return _json(
            {
                "kind": info.list_kind,
                "apiVersion": info.api_version(target.version),
                "metadata": metadata,
                "items": presented,
            }
        )

    def _respond_delete_collection(
        self, target: Target, query: Mapping[str, str], options: Mapping[str, Any]
    ) -> aiohttp.web.Response:
        if "deletecollection" not in target.info.verbs:
            raise errors.method_not_allowed("DELETE")
        opts = routing.write_options(query, options)
        deleted = []
        for obj in self._selected(target, query):
            meta = obj["metadata"]
            one = Target(target.info, target.version, meta.get("namespace"), meta["name"])
            deleted.append(self.api.delete(one, options, opts))
        info = target.info
        rv = str(self.api.store.resource_version)
        return _json(
            {
                "kind": info.list_kind,
                "apiVersion": info.api_version(target.version),
                "metadata": {"resourceVersion": rv},
                "items": deleted,
            }
        )

    async def _respond_watch(
        self, raw: aiohttp.web.BaseRequest, target: Target, plan: FaultPlan = NO_FAULT
    ) -> aiohttp.web.StreamResponse:
        query = raw.query
        labels, fields = self._selectors(target, query)
        timeout = routing.parse_timeout(query)
        loop = asyncio.get_running_loop()
        # The fault layer's time limit ends the stream as timeoutSeconds would (no cancellation,
        # which asyncio.wait_for may swallow), then cuts it.
        cut_at: float | None = None
        if plan.cut_seconds and (timeout is None or plan.cut_seconds < timeout):
            timeout, cut_at = plan.cut_seconds, loop.time() + plan.cut_seconds
        watch = Watch(
            self.api,
            WatchQuery(
                target=target,
                labels=labels,
                fields=fields,
                since=query.get("resourceVersion"),
                send_initial_events=routing.flag(query, "sendInitialEvents"),
                bookmarks=routing.flag(query, "allowWatchBookmarks"),
                timeout=timeout,
            ),
            self.bookmark_interval,
        )
        watch.open()
        as_table = routing.wants(raw.headers.get("Accept", ""), "Table")
        response = aiohttp.web.StreamResponse(status=200, headers={"Content-Type": JSON})
        response.enable_chunked_encoding()
        await response.prepare(raw)
        if plan.gone_watch:  # as the watch cache answers a resourceVersion it no longer has
            since, now = query.get("resourceVersion"), self.api.store.resource_version
            gone = errors.gone(f"too old resource version: {since} ({now})")
            with contextlib.suppress(ConnectionError, RuntimeError):
                await response.write(json.dumps({"type": "ERROR", "object": gone.status()}).encode() + b"\n")
                await response.write_eof()
            return response
        first = True
        sent = 0
        try:
            async with contextlib.aclosing(watch.events()) as events:
                async for raw_event in events:
                    event = raw_event
                    if as_table and event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                        event = dict(
                            event,
                            object=tables.table(
                                target.info,
                                target.version,
                                [event["object"]],
                                self.clock(),
                                include=query.get("includeObject", "Metadata"),
                                with_columns=first,
                            ),
                        )
                        first = False
                    line = json.dumps(event).encode() + b"\n"
                    if plan.cut_events and sent >= plan.cut_events:
                        await self._cut(raw, response, line)
                        return response
                    await response.write(line)
                    sent += 1
            if cut_at is not None and loop.time() >= cut_at and not self.api.store.closed:
                await self._cut(raw, response, b'{"type": "BOOKMARK", "object": {"kind": ')
                return response
            await response.write_eof()
        except (ConnectionError, RuntimeError):
            pass  # the client went away
        return response

    async def _cut(
        self, raw: aiohttp.web.BaseRequest, response: aiohttp.web.StreamResponse, line: bytes
    ) -> None:
        """Cut a watch stream mid-event: half of ``line``, then the connection is dropped."""
        if self.faults is not None:
            self.faults.count("cut_watch", raw.method, raw.path)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await response.write(line[: max(1, len(line) // 2)])
        if raw.transport is not None:
            raw.transport.close()


def parsing_action(
    method: str, query: Mapping[str, str], path: routing.ApiPath | None
) -> enums.action | None:
    """kmock's notion of the request's action (list, watch, fetch, create, update, delete)."""
    if path is None or path.plural is None:
        return None
    if method == "GET" and routing.flag(query, "watch"):
        return enums.action.WATCH
    if path.name is None:
        return {"GET": enums.action.LIST, "POST": enums.action.CREATE}.get(method)
    return {
        "GET": enums.action.FETCH,
        "PATCH": enums.action.UPDATE,
        "PUT": enums.action.UPDATE,
        "DELETE": enums.action.DELETE,
    }.get(method)
