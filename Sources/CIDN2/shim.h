// libidn2 from Debian's libidn2-dev: IDNA 2008 with the UTS #46 mapping.
#include <idn2.h>
