"""Task modules: each task a few lines over tested code."""
