# lit configuration for grim's FileCheck tests.
#
# Run with `lit -v lit-tests` after `cargo build` (or `cargo xtask test`).
# GRIM_BIN_DIR picks the directory holding grim-opt (default:
# <repo>/target/debug); LLVM_BIN_DIR the one holding FileCheck and not
# (default: /usr/lib/llvm-22/bin).

import os
import tempfile

import lit.formats

config.name = "grim"
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".mlir"]
config.excludes = ["README.md", "lit.cfg.py", "Output"]

config.test_source_root = os.path.dirname(os.path.abspath(__file__))
repo_root = os.path.dirname(config.test_source_root)
config.test_exec_root = os.path.join(tempfile.gettempdir(), "grim-lit-tests", "Output")

grim_bin_dir = os.path.abspath(os.environ.get("GRIM_BIN_DIR", os.path.join(repo_root, "target", "debug")))
llvm_bin_dir = os.environ.get("LLVM_BIN_DIR", "/usr/lib/llvm-22/bin")

grim_opt = os.path.join(grim_bin_dir, "grim-opt")
if not os.access(grim_opt, os.X_OK):
    lit_config.fatal(
        f"grim-opt not found at {grim_opt}: run `cargo build` first, "
        "or point GRIM_BIN_DIR at the directory that holds it"
    )
for tool in ("FileCheck", "not"):
    if not os.access(os.path.join(llvm_bin_dir, tool), os.X_OK):
        lit_config.fatal(f"{tool} not found in {llvm_bin_dir}: install LLVM 22 or set LLVM_BIN_DIR")

config.environment["PATH"] = os.pathsep.join([grim_bin_dir, llvm_bin_dir, config.environment.get("PATH", "")])
# Keep a crash's backtrace short and the diagnostics free of colour codes.
config.environment["RUST_BACKTRACE"] = "0"
config.environment["NO_COLOR"] = "1"

config.substitutions.append(("%FileCheck", "FileCheck --enable-var-scope --allow-unused-prefixes=false"))
