from amtheory.cli import main

main()
