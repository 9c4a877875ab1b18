from newsletter.cli import main

if __name__ == "__main__":
    main(prog_name="newsletter")
