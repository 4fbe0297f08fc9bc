// Package deploy holds gatecache's deployment files: the container image
// (Containerfile for offline builds, Dockerfile for registry builds), the
// IoT Edge manifests, the Debian package (deb/) and the systemd units. Its
// tests check them against the config package, run the binary with the
// image's and the package's settings, and, when CI asks, install the
// package and run the image.
package deploy
