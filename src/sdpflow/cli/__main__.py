from sdpflow.cli import main

main()
