"""The SPI conformance suite: ``pytest --wsp-conformance --wsp-chain=SPEC``.

Each check names the rule it enforces: an ``A``-number of the SPI rules or a
``bug``-number of the classic layered-provider bugs (see ``docs/pytest.md``).
Run it on your own layer with, e.g.::

    pytest --wsp-conformance --wsp-chain=mylayer,tcpip --wsp-chain=mylayer,memory
    wspframe conformance mylayer,tcpip
"""
