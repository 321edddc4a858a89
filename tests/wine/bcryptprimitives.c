/* Stand-in for Windows' bcryptprimitives.dll, for the Wine tests only.
 *
 * Rust's standard library (1.78 and later) takes its randomness from ProcessPrng in
 * bcryptprimitives.dll. Wine ships that DLL from 8.13 on; Debian 12's Wine 8.0 does not, so
 * every Rust .exe fails to start there. This stub answers ProcessPrng from the same system
 * generator RtlGenRandom (advapi32's SystemFunction036) that older Rust used. It is never
 * shipped with Fernhilfe: real Windows has the real DLL.
 *
 * Build: x86_64-w64-mingw32-gcc -shared -O2 -s -o bcryptprimitives.dll bcryptprimitives.c -ladvapi32
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    /* RtlGenRandom takes a ULONG length: feed large requests in pieces. */
    while (len > 0) {
        ULONG chunk = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
