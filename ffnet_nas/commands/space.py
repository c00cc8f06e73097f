"""`ffnet-nas space list|show|sample`: browse the search space and the published variants."""

from __future__ import annotations

import argparse

from ffnet_nas.commands._common import common_options

SPACE_HELP = "mobile, gpu_large, gpu_small, all, mobile_peers, peers_paper, or a YAML space file (default: all)"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "space",
        help="list, show and sample points of the FFNet search space",
        description="Browse the FFNet search space: its domains, the published variants, one point's structure.",
    )
    sub = p.add_subparsers(dest="space_command", metavar="{list,show,sample}", parser_class=type(p))
    sub.required = True
    # every command takes the common options (--workdir, -q/-v); these read nothing from the workdir
    common = common_options()

    ls = sub.add_parser("list", parents=[common], help="the space's domains and size, or the published variants (--published)")
    ls.add_argument("--space", default="all", help=SPACE_HELP)
    ls.add_argument("--published", action="store_true", help="table of published variants: family, params, GMACs, mIoU, "
                    "latencies; then the peer reference points (not FFNets) with their papers' figures")
    ls.add_argument("--task", choices=("segmentation", "classification", "all"), default="segmentation",
                    help="with --published: which published models (default: segmentation)")
    ls.add_argument("--include-train", action="store_true", help="with --published: also the _train entry points")
    ls.set_defaults(func=run_list)

    show = sub.add_parser("show", parents=[common], help="structure, params and MACs of one point (published name or arch code)")
    show.add_argument("name", metavar="NAME_OR_CODE", help="e.g. segmentation_ffnet40S_BBB_mobile or stemB-basic-d4.5.6.4-...")
    show.add_argument("--input-size", metavar="HxW", default=None,
                      help="network input for MACs (default: the published input, else 512x1024, 2x for pre_down)")
    show.add_argument("--num-classes", type=int, default=None, help="classes of the task head (default: 19, 1000 for classifiers)")
    show.set_defaults(func=run_show)

    sample = sub.add_parser("sample", parents=[common], help="uniformly sampled points of a space: code and params, one per line")
    sample.add_argument("--space", default="all", help=SPACE_HELP)
    sample.add_argument("-n", type=int, default=10, help="how many distinct points (default 10)")
    sample.add_argument("--seed", type=int, default=0, help="random seed (same seed, same points)")
    sample.set_defaults(func=run_sample)


def run_list(args: argparse.Namespace) -> int:
    from ffnet_nas.space.describe import format_table, peer_table, published_table, space_summary
    from ffnet_nas.space.searchspace import BUILTIN, FAMILIES, PEER_SPACES, WITH_PEERS, get_space

    space = get_space(args.space)
    if args.published:
        task = None if args.task == "all" else args.task
        # built-in spaces select by family (so the family's classifiers show too); a YAML space by membership
        family = WITH_PEERS.get(args.space, args.space if args.space in FAMILIES else None)
        # a peer space holds no FFNet: membership, not "every family", selects what it lists
        in_space = None if args.space in BUILTIN and args.space not in PEER_SPACES else space
        if args.space not in PEER_SPACES:  # its FFNet table would only say "(none)"
            print(format_table(published_table(space=in_space, family=family, task=task, include_train=args.include_train)))
        if task != "classification" and (args.space == "all" or args.space in WITH_PEERS or in_space is not None):
            # `all` and the peer spaces list every peer point (paper-shaped ones are outside mobile_peers)
            peers = peer_table(space=in_space)
            if not peers.empty:
                print("\npeer reference points: NOT FFNets (the designs the FFNet paper argues against); "
                      "figures as their papers publish them, on their hardware and data")
                print(format_table(peers))
    else:
        print(space_summary(space))
    return 0


def run_show(args: argparse.Namespace) -> int:
    from ffnet_nas.space.complexity import parse_hw
    from ffnet_nas.space.describe import describe, format_point

    input_hw = parse_hw(args.input_size) if args.input_size else None
    print(format_point(describe(args.name, input_hw=input_hw, num_classes=args.num_classes)))
    return 0


def run_sample(args: argparse.Namespace) -> int:
    from ffnet_nas.space.describe import sample_table
    from ffnet_nas.space.errors import InvalidInput
    from ffnet_nas.space.searchspace import get_space

    if args.n < 1:
        raise InvalidInput(f"-n {args.n}: expected a positive number of points")
    space = get_space(args.space)
    table = sample_table(space, args.n, seed=args.seed)
    if len(table) < args.n:
        print(f"# space {space.name} has only {space.size} points; all of them are listed")
    width = table["code"].str.len().max()
    for row in table.itertuples(index=False):
        name = f"  {row[2]}" if row[2] else ""
        print(f"{row[0]:<{width}}  {row[1]:8.2f}M params{name}")
    return 0
