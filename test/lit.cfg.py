# -*- Python -*-
# lit configuration of the MoE-MLIR tests.

import os

import lit.formats
from lit.llvm import llvm_config
from lit.llvm.subst import ToolSubst

config.name = "MOE"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".c", ".test"]
config.excludes = ["lit.cfg.py", "lit.site.cfg.py", "CMakeLists.txt", "Inputs"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.moe_obj_root, "test")

config.substitutions.append(("%PATH%", config.environment["PATH"]))
config.substitutions.append(("%moe_src_root", config.moe_src_root))
config.substitutions.append(("%moe_obj_root", config.moe_obj_root))
config.substitutions.append(("%python", config.python_executable))
config.substitutions.append(
    ("%moe_plugin", os.path.join(config.moe_obj_root, "lib", "libMoEPlugin.so")))

llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)
llvm_config.use_default_substitutions()
llvm_config.with_environment("PYTHONPATH", os.path.join(config.moe_src_root, "python"),
                             append_path=True)
llvm_config.with_environment("MOE_MLIR_BUILD_DIR", config.moe_obj_root)
for var in ("CUDA_HOME", "CUDA_ROOT", "CUDA_PATH"):
    if var in os.environ:
        config.environment[var] = os.environ[var]

tool_dirs = [config.moe_tools_dir, config.llvm_tools_dir]
llvm_config.add_tool_substitutions(["moe-opt", "moe-compile", "mlir-opt", "moe-capi-test",
                                    "moe-stream-bench"],
                                   tool_dirs)

# ptxas (CUDA toolkit) serializes GPU kernels to cubins and fatbins; PTX needs
# only LLVM.
cuda_home = os.environ.get("CUDA_HOME", "/usr/local/cuda")
if os.path.exists(os.path.join(cuda_home, "bin", "ptxas")):
    config.available_features.add("ptxas")
    config.environment["CUDA_HOME"] = cuda_home
