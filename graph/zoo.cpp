#include "graph/ir.h"
