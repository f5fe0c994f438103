"""``rnnlab data list`` and ``rnnlab data fetch NAME... [--from DIR]`` (``rnnlab.data.catalog``)."""

from __future__ import annotations

from pathlib import Path

from rnnlab.cli.common import Parser
from rnnlab.data import catalog


def add_parsers(sub) -> None:
    data = sub.add_parser("data", help="data sets by name: list them, fetch them into the cache")
    commands = data.add_subparsers(dest="data_command", required=True, parser_class=Parser)
    ls = commands.add_parser("list", help="every data set rnnlab knows: size, licence, origin, cached or not")
    ls.set_defaults(func=cmd_list)
    fetch = commands.add_parser(
        "fetch",
        help="download data sets from their publishers (or copy them from a folder), check them, keep them",
        description=f"Fetch data sets into the cache ($RNNLAB_DATA, now {catalog.cache_root()}), checking every "
        "file's sha256. A download resumes where it stopped.",
    )
    fetch.add_argument("names", nargs="+", metavar="NAME", help="data sets (rnnlab data list)")
    fetch.add_argument("--from", dest="source", type=Path, metavar="DIR", help="take the files from this folder")
    fetch.add_argument("--quiet", action="store_true", help="no progress bars")
    fetch.set_defaults(func=cmd_fetch)


def cmd_list(args) -> int:
    print(f"cache: {catalog.cache_root()}")
    print(f"  {'name':16} {'size':>9}  {'cached':6}  {'licence':32} title / origin")
    for d in catalog.DATASETS.values():
        size = f"{d.size / 1e6:,.1f} MB"
        where = "" if any(f.url for f in d.all_files()) else " (--from a copy only)"
        print(f"  {d.name:16} {size:>9}  {'yes' if catalog.cached(d) else 'no':6}  {d.license[:32]:32} {d.title}")
        print(f"  {'':16} {'':>9}  {'':6}  {'':32} from {d.origin}{where}")
    return 0


def cmd_fetch(args) -> int:
    for name in args.names:
        catalog.get(name)  # every name is checked before anything is fetched
    for name in args.names:
        catalog.fetch(name, args.source, progress=not args.quiet)
    return 0
