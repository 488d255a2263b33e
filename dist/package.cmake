# The Debian package (CPack DEB): filled in below.
