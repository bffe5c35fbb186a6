"""A hostile Home Assistant websocket API, as a separate process: real aiohttp, HA's message shapes, at sizes and
in ways a real one can be pushed to (a very large home, a registry changing all the time, a proxy that closes
after every answer). Home Assistant itself stays the one in tests/ha; this one is for what it cannot be made to do.

Run as `python -m tests.hostile_hass --entities 100000`; prints `ready PORT`. Answers are built once, at start.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from aiohttp import WSMsgType, web


def _answers(entities: int, pad: int, bomb: int, nested: int) -> dict[str, str]:
    ids = [f"light.lamp_{i}" for i in range(entities)]
    padding = [{}] * pad  # 3 bytes of JSON each, a dict of ~70 bytes each once decoded whole
    states = [{"entity_id": entity_id, "state": "off",
               "attributes": {"friendly_name": f"Lamp {i}", "history": padding},
               "last_changed": "2026-01-01T00:00:00+00:00", "last_updated": "2026-01-01T00:00:00+00:00",
               "context": {"id": "01HZZZZZZZZZZZZZZZZZZZZZZZ", "parent_id": None, "user_id": None}}
              for i, entity_id in enumerate(ids)]
    areas = json.dumps([{"area_id": "kitchen", "name": "Kitchen", "aliases": ["Cuisine"]}])
    return {
        "config/area_registry/list": "[" * nested + "]" * nested if nested else areas,
        "homeassistant/expose_entity/list": json.dumps(
            {"exposed_entities": {entity_id: {"conversation": True} for entity_id in ids}}),
        # A bomb: as many empty objects as asked for, each an element to decode (3 bytes of JSON each).
        "get_states": "[" + ",".join(["{}"] * bomb) + "]" if bomb else json.dumps(states, separators=(",", ":")),
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entities", type=int, default=10)
    parser.add_argument("--pad", type=int, default=0, help="empty objects in an attribute of each state")
    parser.add_argument("--bomb", type=int, default=0, help="get_states answers this many empty objects instead")
    parser.add_argument("--nested", type=int, default=0, help="the area list answered as arrays nested this deep")
    parser.add_argument("--event-every", type=float, default=0.0, help="a registry event this often (seconds)")
    parser.add_argument("--close-after-read", action="store_true", help="close once the names were read")
    args = parser.parse_args(argv)
    answers = _answers(args.entities, args.pad, args.bomb, args.nested)

    async def websocket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=64 * 1024 * 1024)
        await ws.prepare(request)
        await ws.send_json({"type": "auth_required", "ha_version": "2026.10.4"})
        await ws.receive()
        await ws.send_json({"type": "auth_ok", "ha_version": "2026.10.4"})
        events: asyncio.Task[None] | None = None

        async def storm(subscription: int) -> None:
            while True:
                await asyncio.sleep(args.event_every)
                await ws.send_str(json.dumps({"id": subscription, "type": "event", "event": {
                    "event_type": "entity_registry_updated", "data": {"action": "update"}}}))

        try:
            async for message in ws:
                if message.type is not WSMsgType.TEXT:
                    continue
                command = json.loads(message.data)
                kind, message_id = command["type"], command["id"]
                if kind == "subscribe_events":
                    await ws.send_str(f'{{"id":{message_id},"type":"result","success":true,"result":null}}')
                    if args.event_every and events is None:
                        events = asyncio.create_task(storm(message_id))
                    continue
                if kind == "config/entity_registry/get_entries":
                    result = json.dumps({entity_id: {"aliases": []} for entity_id in command["entity_ids"]})
                else:
                    result = answers[kind]
                # As HA writes a result: id and type first, the result last, spliced in as text.
                await ws.send_str(f'{{"id":{message_id},"type":"result","success":true,"result":{result}}}')
                if kind == "config/entity_registry/get_entries" and args.close_after_read:
                    await ws.close()
        finally:
            if events is not None:
                events.cancel()
        return ws

    async def serve() -> None:
        app = web.Application()
        app.router.add_get("/api/websocket", websocket)
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # noqa: SLF001
        print(f"ready {port}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main(sys.argv[1:])
