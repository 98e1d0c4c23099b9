# Sources of codegen/halide/, included by codegen/CMakeLists.txt.
#
# The host kernels are Halide 14 generators compiled ahead of time: one
# generator executable (generators.cpp) emits one static library per kernel
# (and schedule variant) for the build host's target, all sharing one Halide
# runtime. host_kernels.{h,cpp} wrap them behind plain C++ signatures.
find_package(Halide 14 REQUIRED)

add_halide_generator(vkfuse_halide_generators SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/halide/generators.cpp)
# A build tool: no sanitizers, and Halide.h is not held to our warning flags.
set_property(TARGET vkfuse_halide_generators PROPERTY COMPILE_OPTIONS -O2 -w)
set_property(TARGET vkfuse_halide_generators PROPERTY LINK_OPTIONS "")

set(VKFUSE_HALIDE_TARGET host CACHE STRING "Halide target of the host kernels (host = the build machine's features)")

# vkf_halide_kernel(NAME GENERATOR [PARAMS...])
set(_vkf_halide_runtime "")
function(vkf_halide_kernel name generator)
  if(_vkf_halide_runtime)
    add_halide_library(${name} FROM vkfuse_halide_generators GENERATOR ${generator}
                       TARGETS ${VKFUSE_HALIDE_TARGET} USE_RUNTIME ${_vkf_halide_runtime}
                       PARAMS ${ARGN})
  else()
    add_halide_library(${name} FROM vkfuse_halide_generators GENERATOR ${generator}
                       TARGETS ${VKFUSE_HALIDE_TARGET} PARAMS ${ARGN})
    set(_vkf_halide_runtime ${name}.runtime PARENT_SCOPE)
  endif()
  target_link_libraries(vkfuse_codegen PUBLIC ${name})
endfunction()

vkf_halide_kernel(vkf_conv vkf_conv2d residual=false)
vkf_halide_kernel(vkf_conv_res vkf_conv2d residual=true)
vkf_halide_kernel(vkf_convm vkf_conv2d_mvec residual=false)
vkf_halide_kernel(vkf_convm_res vkf_conv2d_mvec residual=true)
vkf_halide_kernel(vkf_pw vkf_pointwise_conv residual=false)
vkf_halide_kernel(vkf_pw_res vkf_pointwise_conv residual=true)
vkf_halide_kernel(vkf_wino vkf_winograd_f4x3 residual=false)
vkf_halide_kernel(vkf_wino_res vkf_winograd_f4x3 residual=true)
vkf_halide_kernel(vkf_dwconv vkf_dwconv2d)
vkf_halide_kernel(vkf_maxpool vkf_pool2d is_max=true)
vkf_halide_kernel(vkf_avgpool vkf_pool2d is_max=false)
vkf_halide_kernel(vkf_global_avgpool vkf_global_avgpool)
vkf_halide_kernel(vkf_gemm vkf_gemm)
vkf_halide_kernel(vkf_binary vkf_binary)
vkf_halide_kernel(vkf_channel_affine vkf_channel_affine)
vkf_halide_kernel(vkf_softmax vkf_softmax)
vkf_halide_kernel(vkf_pad vkf_pad4d)

target_sources(vkfuse_codegen PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/halide/host_kernels.cpp)
