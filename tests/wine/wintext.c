/* Prints the text of a window inside Wine as UTF-8, for the Wine tests: what the agent typed
 * into notepad, read back the way Windows programs read each other's text (WM_GETTEXT), not
 * from pixels.
 *
 * Usage: wintext.exe CLASS [CHILD_CLASS]   e.g. wintext.exe Notepad Edit
 * Exit 0 with the text on stdout; 1 when no such window exists.
 *
 * Build: x86_64-w64-mingw32-gcc -municode -O2 -s -o wintext.exe wintext.c
 */
#include <windows.h>
#include <stdio.h>

int wmain(int argc, wchar_t **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: wintext.exe CLASS [CHILD_CLASS]\n");
        return 2;
    }
    HWND window = FindWindowW(argv[1], NULL);
    if (window && argc > 2)
        window = FindWindowExW(window, NULL, argv[2], NULL);
    if (!window) {
        fprintf(stderr, "wintext: no window of that class\n");
        return 1;
    }
    LRESULT len = SendMessageW(window, WM_GETTEXTLENGTH, 0, 0);
    wchar_t *text = calloc((size_t)len + 1, sizeof(wchar_t));
    if (!text)
        return 3;
    SendMessageW(window, WM_GETTEXT, (WPARAM)len + 1, (LPARAM)text);
    int bytes = WideCharToMultiByte(CP_UTF8, 0, text, -1, NULL, 0, NULL, NULL);
    char *utf8 = malloc(bytes > 0 ? (size_t)bytes : 1);
    if (!utf8)
        return 3;
    WideCharToMultiByte(CP_UTF8, 0, text, -1, utf8, bytes, NULL, NULL);
    /* Written as bytes, so the console's code page cannot mangle the UTF-8. */
    fwrite(utf8, 1, strlen(utf8), stdout);
    return 0;
}
