#include "vkfuse/vkfuse.h"
