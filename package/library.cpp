// libvkfuse.so and libvkfuse.a are vkfuse_runtime and what it links, whole;
// this file only gives the shared library target a source of its own.
#include "vkfuse/vkfuse.h"
