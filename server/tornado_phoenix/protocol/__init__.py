"""The pure core: message types and serializers. Imports no tornado, asyncio, socket, time or os."""
