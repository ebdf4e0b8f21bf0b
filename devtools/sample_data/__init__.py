"""Sample landing data: days of purchase events as the order system would land them.

Writes ``<root>/landing/purchases/dt=YYYY-MM-DD/part-NNNNN.jsonl[.gz]`` following the
landing contract of docs/DATA_CONTRACT.md, with the mess of a real feed: heavy buyers and
rare ones, multi-item orders, refunds of earlier orders, retried deliveries, late events
and a share of broken records. docs/GENERATOR.md describes the options and every defect.

Every value is a hash of (seed, landing day, record number), never ``rand()``, so the same
arguments give byte-identical files whatever the cluster, and a day's content does not
depend on how many other days are generated with it.

Modules, in the order a run uses them:

- ``scenario``: the customers, regions, currencies, catalogue and feed rates;
- ``plan``: how many records of each kind every landing day gets, and in which file;
- ``columns``: deterministic hashes and small Spark column helpers;
- ``records``: the record each slot of a day renders (who, what, when, which price);
- ``defects``: the broken records and the quarantine reason each kind should get;
- ``writer``: renders the lines with Spark and puts the files in place;
- ``summary``: what a run wrote, per day and per defect kind;
- ``generator``: ``generate``, the Python entry point;
- ``cli``: the command line (``python -m devtools.generate_purchases``).
"""
