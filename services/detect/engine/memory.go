package engine

/*
#include <malloc.h>
*/
import "C"

// ReleaseMemory returns memory the C allocator holds but no longer uses (freed ONNX Runtime
// sessions, arenas) to the operating system. Call it after closing engines; without it, glibc
// keeps much of a closed session's memory mapped, and resident memory climbs as versions come
// and go before it levels off.
func ReleaseMemory() { C.malloc_trim(0) }
