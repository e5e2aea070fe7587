from serein.cli import main

main()
