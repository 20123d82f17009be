from ecgml.cli import main

main()
