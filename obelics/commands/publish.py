"""``obelics publish OUT_DIR --repo-id ORG/NAME [--dry-run]``: dataset card + resumable upload to the Hub.

Builds OUT_DIR/.hub (data/train-*.parquet, README.md with the card, stats.json, report.html) and uploads
it with huggingface_hub's large-folder upload; rerun the same command to resume an interrupted upload.
``--dry-run`` builds the exact folder and uploads nothing.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("publish", help="write the dataset card and upload a run's output to the Hub",
                       description=__doc__)
    p.add_argument("out_dir", metavar="OUT_DIR", help="the run's output folder (with parquet/)")
    p.add_argument("--repo-id", required=True, help="dataset repository, ORG/NAME")
    p.add_argument("--dry-run", action="store_true", help="build the folder only; upload nothing")
    p.add_argument("--folder", help="where to build the folder (default OUT_DIR/.hub)")
    p.add_argument("--profile", help="profile to describe when OUT_DIR has no profile.yaml")
    p.add_argument("--private", action="store_true", help="create the repository as private")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from obelics.commands import result
    from pipeline.preflight import check_hub_token, check_network, hub_target
    from pipeline.publish import publish

    if not args.dry_run:  # before any folder is built or anything uploaded
        check_hub_token()
        check_network([hub_target()])
    folder = publish(args.out_dir, args.repo_id, dry_run=args.dry_run, folder=args.folder,
                     profile=args.profile, private=args.private)
    result(f"{'built (dry run)' if args.dry_run else 'uploaded'}: {folder}")
    return 0
