"""``mlbench check METHOD``: run the method contract and print one PASS/FAIL/SKIP line per check."""

from __future__ import annotations

import argparse

from mlbench.cli import options


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="run the method contract (shapes, label order, determinism, ...) on a method")
    p.add_argument("method")
    options.add_params(p, "override a hyperparameter for the check (repeatable)")
    options.add_plugin(p)
    p.set_defaults(func=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    from mlbench.api import validate_params
    from mlbench.contract import run_contract
    from mlbench.data.synthetic import contract_tasks
    from mlbench.registry import get_method, method_origin

    method_cls = get_method(args.method)
    params = options.parse_params(args.param)
    validate_params(method_cls, None, params)
    print(f"checking method {args.method!r} from {method_origin(args.method)} against the mlbench contract "
          "(tiny synthetic task)")

    def show(r) -> None:
        print(f"  {r.status}  {r.name}" + (f": {r.detail}" if r.detail else ""), flush=True)

    results = run_contract(method_cls, contract_tasks(), params=params, on_result=show)
    failed = sum(not r.passed for r in results)
    skipped = sum(r.skipped for r in results)
    print(f"{len(results) - failed - skipped} passed, {skipped} skipped, {failed} failed"
          + (f": {args.method!r} does not meet the contract" if failed else ""))
    return 1 if failed else 0
