# Sources of codegen/halide/, included by codegen/CMakeLists.txt.
#
# The host kernels are Halide 14 generators compiled ahead of time: one
# generator executable (generators.cpp) emits one static library per kernel
# (and schedule variant) for the targets below, all sharing one Halide
# runtime. host_kernels.{h,cpp} wrap them behind plain C++ signatures.
find_package(Halide 14 REQUIRED)

# VKFUSE_HALIDE_KERNELS_FROM: link the kernels another build of the same
# sources generated instead of generating them again. CI's sanitizer builds
# use it: the sanitizers do not instrument generated code, and the kernels'
# generation is most of their build time.
set(VKFUSE_HALIDE_KERNELS_FROM "" CACHE PATH
    "A vkfuse build directory (same sources) whose generated Halide kernels this build links instead of generating them")
if(VKFUSE_HALIDE_KERNELS_FROM)
  set(_vkf_kernels_dir ${VKFUSE_HALIDE_KERNELS_FROM}/codegen)
  if(NOT EXISTS ${_vkf_kernels_dir}/vkf_halide_kernels.cmake)
    message(FATAL_ERROR "vkfuse: VKFUSE_HALIDE_KERNELS_FROM=${VKFUSE_HALIDE_KERNELS_FROM} is not a configured vkfuse "
                        "build directory (no codegen/vkf_halide_kernels.cmake); configure and build it first")
  endif()
  include(${_vkf_kernels_dir}/vkf_halide_kernels.cmake)  # _vkf_from_revision, _vkf_from_targets
  if(NOT _vkf_from_revision STREQUAL VKFUSE_KERNEL_REVISION)
    message(FATAL_ERROR "vkfuse: the kernels in ${VKFUSE_HALIDE_KERNELS_FROM} were generated from other sources "
                        "(kernel revision ${_vkf_from_revision}, these sources ${VKFUSE_KERNEL_REVISION}); "
                        "rebuild that directory from these sources or leave VKFUSE_HALIDE_KERNELS_FROM empty")
  endif()
else()
  add_halide_generator(vkfuse_halide_generators SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/halide/generators.cpp)
  # A build tool: no sanitizers, and Halide.h is not held to our warning flags.
  set_property(TARGET vkfuse_halide_generators PROPERTY COMPILE_OPTIONS -O2 -w)
  set_property(TARGET vkfuse_halide_generators PROPERTY LINK_OPTIONS "")
endif()

# Run-time CPU dispatch: by default each kernel is compiled for several x86-64
# feature levels, and Halide's multi-target wrapper runs the first one whose
# features the running CPU has (halide_can_use_target_features), so a binary
# built on an AVX-512 machine still runs on an AVX2 or SSE4.1-only one. The
# first target is the one the schedules were tuned for (AVX-512); the last
# must be the baseline. Each target costs one more code generation per
# kernel. OFF builds the single VKFUSE_HALIDE_TARGET (e.g. `host`) instead.
option(VKFUSE_HALIDE_MULTITARGET "Build the host kernels for several x86-64 feature levels, chosen at run time" ON)
set(VKFUSE_HALIDE_TARGET host CACHE STRING
    "Halide target of the host kernels when VKFUSE_HALIDE_MULTITARGET is OFF (host = the build machine's features)")
set(VKFUSE_HALIDE_TARGETS
    "${Halide_CMAKE_TARGET}-avx-avx2-avx512-avx512_skylake-f16c-fma-sse41;${Halide_CMAKE_TARGET}-avx-avx2-f16c-fma-sse41;${Halide_CMAKE_TARGET}-sse41"
    CACHE STRING "Halide targets of the host kernels when VKFUSE_HALIDE_MULTITARGET is ON, best first, baseline last")
if(VKFUSE_HALIDE_MULTITARGET AND NOT Halide_CMAKE_TARGET MATCHES "^x86-64-")
  message(STATUS "vkfuse: VKFUSE_HALIDE_MULTITARGET applies to x86-64 hosts only; building for ${VKFUSE_HALIDE_TARGET}")
  set(_vkf_halide_targets ${VKFUSE_HALIDE_TARGET})
elseif(VKFUSE_HALIDE_MULTITARGET)
  set(_vkf_halide_targets ${VKFUSE_HALIDE_TARGETS})
else()
  set(_vkf_halide_targets ${VKFUSE_HALIDE_TARGET})
endif()
if(VKFUSE_HALIDE_KERNELS_FROM)
  set(_vkf_halide_targets ${_vkf_from_targets})
else()
  file(CONFIGURE OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/vkf_halide_kernels.cmake CONTENT
       "set(_vkf_from_revision \"${VKFUSE_KERNEL_REVISION}\")\nset(_vkf_from_targets \"${_vkf_halide_targets}\")\n")
endif()
message(STATUS "vkfuse: Halide host kernel targets: ${_vkf_halide_targets}")
set_property(GLOBAL PROPERTY VKFUSE_HALIDE_TARGETS "${_vkf_halide_targets}")  # for tests/codegen

# vkf_halide_kernel(NAME GENERATOR [PARAMS...])
set(_vkf_halide_runtime "")
function(vkf_halide_kernel name generator)
  if(VKFUSE_HALIDE_KERNELS_FROM)
    if(NOT _vkf_halide_runtime)
      set(_vkf_halide_runtime ${name}.runtime)
      add_library(${_vkf_halide_runtime} STATIC IMPORTED GLOBAL)
      set_target_properties(${_vkf_halide_runtime} PROPERTIES
        IMPORTED_LOCATION ${_vkf_kernels_dir}/lib${name}.runtime.a)
      target_link_libraries(${_vkf_halide_runtime} INTERFACE Halide::Runtime Threads::Threads ${CMAKE_DL_LIBS})
      set(_vkf_halide_runtime ${_vkf_halide_runtime} PARENT_SCOPE)
      set_property(GLOBAL APPEND PROPERTY VKFUSE_HALIDE_LIBRARIES ${_vkf_halide_runtime})
    endif()
    add_library(${name} STATIC IMPORTED GLOBAL)
    set_target_properties(${name} PROPERTIES IMPORTED_LOCATION ${_vkf_kernels_dir}/lib${name}.a
                                             INTERFACE_INCLUDE_DIRECTORIES ${_vkf_kernels_dir})
    target_link_libraries(${name} INTERFACE ${_vkf_halide_runtime})
  elseif(_vkf_halide_runtime)
    add_halide_library(${name} FROM vkfuse_halide_generators GENERATOR ${generator}
                       TARGETS ${_vkf_halide_targets} USE_RUNTIME ${_vkf_halide_runtime}
                       PARAMS ${ARGN})
  else()
    add_halide_library(${name} FROM vkfuse_halide_generators GENERATOR ${generator}
                       TARGETS ${_vkf_halide_targets} PARAMS ${ARGN})
    set(_vkf_halide_runtime ${name}.runtime PARENT_SCOPE)
    set_property(GLOBAL APPEND PROPERTY VKFUSE_HALIDE_LIBRARIES ${name}.runtime)
  endif()
  set_property(GLOBAL APPEND PROPERTY VKFUSE_HALIDE_LIBRARIES ${name})  # for package/'s libvkfuse.a
  target_link_libraries(vkfuse_codegen PUBLIC ${name})
endfunction()

vkf_halide_kernel(vkf_conv vkf_conv2d residual=false)
vkf_halide_kernel(vkf_conv_res vkf_conv2d residual=true)
vkf_halide_kernel(vkf_convm vkf_conv2d_mvec residual=false)
vkf_halide_kernel(vkf_convm_res vkf_conv2d_mvec residual=true)
vkf_halide_kernel(vkf_convm7 vkf_conv2d_mvec residual=false tile_p=7)
vkf_halide_kernel(vkf_convm7_res vkf_conv2d_mvec residual=true tile_p=7)
vkf_halide_kernel(vkf_convm16 vkf_conv2d_mvec residual=false tile_m=16 tile_p=7)
vkf_halide_kernel(vkf_convk vkf_conv2d_chunks residual=false)
vkf_halide_kernel(vkf_convk_res vkf_conv2d_chunks residual=true)
vkf_halide_kernel(vkf_pw vkf_pointwise_conv residual=false)
vkf_halide_kernel(vkf_pw_res vkf_pointwise_conv residual=true)
vkf_halide_kernel(vkf_pw32 vkf_pointwise_conv residual=false tile_p=32)
vkf_halide_kernel(vkf_pw32_res vkf_pointwise_conv residual=true tile_p=32)
vkf_halide_kernel(vkf_wino vkf_winograd_f4x3 residual=false)
vkf_halide_kernel(vkf_wino_res vkf_winograd_f4x3 residual=true)
vkf_halide_kernel(vkf_wino_s vkf_winograd_f4x3 residual=false staged=true)
vkf_halide_kernel(vkf_wino_s_res vkf_winograd_f4x3 residual=true staged=true)
vkf_halide_kernel(vkf_dwconv vkf_dwconv2d)
vkf_halide_kernel(vkf_dwconv_w vkf_dwconv2d wide_rows=true)
vkf_halide_kernel(vkf_dwconvm vkf_dwconv2d_cvec)
vkf_halide_kernel(vkf_dwconv_flat vkf_dwconv2d_flat)
vkf_halide_kernel(vkf_dwb vkf_dwconv2d_blocked)
vkf_halide_kernel(vkf_dwb_s2k3 vkf_dwconv2d_blocked stride2_window=3)
vkf_halide_kernel(vkf_dwb_s2k5 vkf_dwconv2d_blocked stride2_window=5)
vkf_halide_kernel(vkf_pwb vkf_pointwise_blocked blocked_input=true residual=false)
vkf_halide_kernel(vkf_pwb_res vkf_pointwise_blocked blocked_input=true residual=true)
vkf_halide_kernel(vkf_pwb_planar vkf_pointwise_blocked blocked_input=false residual=false)
vkf_halide_kernel(vkf_pwb_co vkf_pointwise_blocked blocked_input=true residual=false channels_outer=true)
vkf_halide_kernel(vkf_pwb_co_res vkf_pointwise_blocked blocked_input=true residual=true channels_outer=true)
vkf_halide_kernel(vkf_maxpool vkf_pool2d is_max=true)
vkf_halide_kernel(vkf_maxpool_w vkf_pool2d is_max=true wide_rows=true)
vkf_halide_kernel(vkf_avgpool vkf_pool2d is_max=false)
vkf_halide_kernel(vkf_avgpool_w vkf_pool2d is_max=false wide_rows=true)
vkf_halide_kernel(vkf_global_avgpool vkf_global_avgpool)
vkf_halide_kernel(vkf_gemm vkf_gemm)
vkf_halide_kernel(vkf_gemm_r12 vkf_gemm tile_rows=12)
vkf_halide_kernel(vkf_gemv vkf_gemv)
vkf_halide_kernel(vkf_binary vkf_binary)
vkf_halide_kernel(vkf_channel_affine vkf_channel_affine)
vkf_halide_kernel(vkf_softmax vkf_softmax)
vkf_halide_kernel(vkf_softmax_rows vkf_softmax rows=true)
vkf_halide_kernel(vkf_layer_norm vkf_layer_norm)
vkf_halide_kernel(vkf_pad vkf_pad4d)

target_sources(vkfuse_codegen PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/halide/host_kernels.cpp)
# host_kernels.cpp reports which of them the running CPU got.
list(JOIN _vkf_halide_targets "," _vkf_halide_targets_csv)
set_property(SOURCE ${CMAKE_CURRENT_SOURCE_DIR}/halide/host_kernels.cpp APPEND PROPERTY
             COMPILE_DEFINITIONS "VKFUSE_HALIDE_TARGETS=\"${_vkf_halide_targets_csv}\"")
