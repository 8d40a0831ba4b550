#!/bin/bash
# The guide's test application: answers every connection on 127.0.0.1:5050.
PORT=5050

while true; do
	echo -e "HTTP/1.1 200 OK\nContent-Type: text/plain\n\nHello world!" | nc -l 127.0.0.1 $PORT
done
