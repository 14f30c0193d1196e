/*
 * Linked into every unit test: turns on the live-allocation count (cf_mem_live) before main,
 * so leak checks see every allocation a test makes.
 */
#include "lib/mem.h"

__attribute__((constructor)) static void unit_mem_track(void)
{
    cf_mem_track();
}
