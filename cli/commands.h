/* commands.h - one entry point per w8a8 sub-command; each returns the exit status. */
#ifndef W8_COMMANDS_H
#define W8_COMMANDS_H

int w8_cmd_run(int argc, char **argv);           /* cmd_run.c */
int w8_cmd_quant(int argc, char **argv);         /* cmd_quant.c */
int w8_cmd_inspect(int argc, char **argv);       /* cmd_inspect.c */
int w8_cmd_tokenize(int argc, char **argv);      /* cmd_tokenize.c */
int w8_cmd_chat_template(int argc, char **argv); /* cmd_chat_template.c */
int w8_cmd_ppl(int argc, char **argv);           /* cmd_ppl.c */
int w8_cmd_compare(int argc, char **argv);       /* cmd_compare.c */
int w8_cmd_bench(int argc, char **argv);         /* cmd_bench.c */
int w8_cmd_synth(int argc, char **argv);         /* cmd_synth.c */
int w8_cmd_serve(int argc, char **argv);         /* cmd_serve.c */
int w8_cmd_eval(int argc, char **argv);          /* cmd_eval.c */

#endif
