"""What adapters share: helpers that several adapters need and that belong to none of them.

Adapters may import this layer (they still never import each other or `app/`); it imports only
the domain, the ports, the standard library and third-party libraries, never an adapter, the
application or the composition root. See docs/architecture.md, "Layers and the import rule".
"""
