#!/bin/sh
# hello: the example program released by releng's quick start.
echo "Hello, world! (hello @version@, @system@)"
