/* carecountd: placeholder main until the server module lands. */
#include <stdio.h>
#include <string.h>
#include "cc_version.h"
int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--version")) {
        printf("carecountd %s\n", CC_VERSION_STRING);
        return 0;
    }
    printf("usage: carecountd [--help] [--version]\n");
    return 0;
}
