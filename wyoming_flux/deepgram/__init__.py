"""Everything that talks to Deepgram: the Flux WebSocket client with its typed messages (`flux`), the table of
failures and their stable codes (`errors`), models and the languages each speaks (`models`), what this process
has learnt about endpoints (`endpoints`) and the warm connection pool (`pool`). It may import `common` and
aiohttp only; it knows nothing of turns, Wyoming or Home Assistant."""
