"""Stand-ins for the services Open-Dispatch talks to, shipped for tests and demos.

`fly_emulator`: a loopback emulator of the Fly Machines API that really runs each machine
(the real `sprite-reporter` as a local process group), so the real Fly adapter can be driven
end to end without a Fly.io account or network.

Why this ships in the installed package rather than in `tests/`: library users write tests
and demos of their own against the real adapters (a dispatcher embedded in their service, a
CI job that runs jobs on "Fly" offline), and `opendispatch demo --sprites fly-emulator`
(`OPENDISPATCH_SPRITES=fly-emulator`) lets anyone try the Fly backend on one machine. None of
it is used by a real deployment's code path.

The import rule (tests/architecture/test_layers.py): this package may import the domain, the
ports, the support layer and adapters (it stands in for what they talk to); in the package,
only the composition root imports it, never the domain, ports, application, adapters or
support layer. Import the modules themselves (`opendispatch.testing.fly_emulator`): this
`__init__` imports nothing, so importing it pulls in no web framework.
"""
