// Package deploy holds gatecache's deployment files (Dockerfile, IoT Edge manifests, systemd unit); its tests check them against the config package.
package deploy
