# Install rules: what `pip install .` (scikit-build-core, pyproject.toml) puts in
# the wheel beside the moe_mlir package, and what `cmake --install` installs.
#
# In a wheel the tools and runtime libraries go to moe_mlir/_native/{bin,lib},
# the layout of a build folder, where moe_mlir.cpu.build_dir() looks for them
# and where moe-compile finds its CUDA runtime archive (../lib from its bin/).
# Everything here is the "moe-runtime" component, the one the wheel installs.

if(SKBUILD)
  set(MOE_MLIR_INSTALL_ROOT "moe_mlir/_native/")
else()
  set(MOE_MLIR_INSTALL_ROOT "")
endif()
set(MOE_MLIR_INSTALL_BINDIR "${MOE_MLIR_INSTALL_ROOT}bin")
set(MOE_MLIR_INSTALL_LIBDIR "${MOE_MLIR_INSTALL_ROOT}lib")

# The tools and the plugin load the system LLVM (libLLVM, libMLIR), which
# stays where Debian put it: their installed RPATH names it, as the build's
# does (add_llvm_executable alone installs "$ORIGIN/../lib" only).
set_property(TARGET moe-opt moe-compile APPEND PROPERTY INSTALL_RPATH "${LLVM_LIBRARY_DIR}")
set_target_properties(MoEPlugin PROPERTIES INSTALL_RPATH "${LLVM_LIBRARY_DIR}")

install(TARGETS moe-opt moe-compile
  RUNTIME DESTINATION "${MOE_MLIR_INSTALL_BINDIR}" COMPONENT moe-runtime)
install(TARGETS MoEPlugin moe_cuda_runtime_shared moe_cuda_runtime_static
  LIBRARY DESTINATION "${MOE_MLIR_INSTALL_LIBDIR}" COMPONENT moe-runtime
  ARCHIVE DESTINATION "${MOE_MLIR_INSTALL_LIBDIR}" COMPONENT moe-runtime)
# C programs calling an artifact include only its generated header; the
# runtime header is what that header embeds, for those who want it alone.
install(FILES "${PROJECT_SOURCE_DIR}/include/moe/Runtime/moe_runtime.h"
  DESTINATION "${MOE_MLIR_INSTALL_ROOT}include/moe/Runtime" COMPONENT moe-runtime)
