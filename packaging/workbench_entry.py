"""Entry point of the frozen app (PyInstaller): the `workbench` command, GUI by default.

freeze_support() must run first: the job engine starts its workers with the "spawn" method,
which in a frozen app re-executes this same executable with multiprocessing's arguments.
"""
import multiprocessing
import sys

# The plugins this bundle ships; `--selftest` fails if discovery does not find them (a build
# that lost their entry-point metadata would otherwise start with an empty plugin tree).
BUNDLED_PLUGINS = ("sea", "vmat")


def run() -> int:
    argv = sys.argv[1:]
    if argv == ["--selftest"]:
        from workbench.selftest import main as selftest

        return selftest(expect=BUNDLED_PLUGINS)
    from workbench.cli.main import main

    return main(argv)


if __name__ == "__main__":
    multiprocessing.freeze_support()
    sys.exit(run())
