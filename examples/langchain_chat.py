"""LangChain's ChatOpenAI through thinkroute: only the base URL and the key change.

THINKROUTE_URL=http://127.0.0.1:8000/v1 THINKROUTE_API_KEY=sk-... python examples/langchain_chat.py
"""

import os

from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_openai import ChatOpenAI

llm = ChatOpenAI(
    model="auto",  # or auto:cheap, auto:quality, or a configured model name
    base_url=os.environ.get("THINKROUTE_URL", "http://127.0.0.1:8000/v1"),
    api_key=os.environ.get("THINKROUTE_API_KEY", "sk-thinkroute-local-dev"),
    include_response_headers=True,  # the routing decision comes in x-thinkroute-* headers
    # LangChain asks for a stream's token usage only from api.openai.com unless told to;
    # thinkroute sends it in the last chunk, as OpenAI does.
    stream_usage=True,
)

# A chain, as most LangChain code calls a model.
prompt = ChatPromptTemplate.from_messages(
    [("system", "You are a concise assistant."), ("user", "{question}")]
)
chain = prompt | llm
for question in ("Write a haiku about tea.", "Prove that 2^n > n^2 for n > 4."):
    answer = chain.invoke({"question": question})
    headers = answer.response_metadata["headers"]
    print(
        f"{question}\n  -> {headers['x-thinkroute-tier']} ({headers['x-thinkroute-model']}, "
        f"score {headers['x-thinkroute-score']}, {answer.usage_metadata['total_tokens']} tokens)"
    )
    print(f"  {answer.content[:120]}")

# Streaming, with the usage of the whole answer in its last chunk.
streamed = None
for chunk in llm.stream(
    [SystemMessage("Answer in one sentence."), HumanMessage("Why is the sky blue?")]
):
    print(chunk.content, end="", flush=True)
    streamed = chunk if streamed is None else streamed + chunk
print(f"\n  streamed, {streamed.usage_metadata['total_tokens']} tokens")
